//! The run schedule of background jobs that run once across instances (`job_runs`).

use super::{dispatch, DbResult, Pool};

/// Claims the run of job `name` that is due at `now`: of the instances asking, exactly one
/// moves `next_run_at` to `next` and gets `true`.
pub async fn claim_job(
    pool: &Pool,
    name: &str,
    holder: &str,
    now: i64,
    next: i64,
) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO job_runs (name, next_run_at, last_run_at, holder, runs) VALUES ($1, $2, $3, $4, 1) \
         ON CONFLICT (name) DO UPDATE SET next_run_at = $2, last_run_at = $3, holder = $4, runs = job_runs.runs + 1 \
         WHERE job_runs.next_run_at <= $3",
    )
    .bind(name).bind(next).bind(now).bind(holder)
    .execute(p)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// When job `name` is next due, if it ever ran.
pub async fn job_next_run(pool: &Pool, name: &str) -> DbResult<Option<i64>> {
    dispatch!(pool, p => sqlx::query_scalar::<_, i64>("SELECT next_run_at FROM job_runs WHERE name = $1")
        .bind(name)
        .fetch_optional(p)
        .await)
}

/// How many times job `name` has run, across instances.
pub async fn job_runs(pool: &Pool, name: &str) -> DbResult<i64> {
    dispatch!(pool, p => sqlx::query_scalar::<_, i64>("SELECT runs FROM job_runs WHERE name = $1")
        .bind(name)
        .fetch_optional(p)
        .await
        .map(|n| n.unwrap_or(0)))
}
