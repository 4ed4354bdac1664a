//! Portcullis: a multi-tenant OAuth 2.0 / OpenID Connect identity provider.
//!
//! Layers, each importing only downward (ARCHITECTURE.md; checked by
//! `tests/architecture.rs`): transport in [`http`] and [`error`], wiring in [`state`], one
//! domain module per thing users talk about ([`tenants`], [`clients`], [`accounts`],
//! [`sessions`], [`tokens`], [`keys`], [`rbac`], [`authorization`], [`audit`],
//! [`federation`], …), and SQL only in [`storage`].

pub mod accounts;
pub mod api_keys;
pub mod audit;
pub mod authorization;
pub mod cli;
pub mod clients;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod dpop;
pub mod error;
pub mod federation;
pub mod first_party;
pub mod http;
pub mod i18n;
pub mod jobs;
pub mod keys;
pub mod mail;
pub mod metrics;
pub mod mfa;
pub mod outbound;
pub mod passkeys;
pub mod platform_admins;
pub mod protection;
pub mod provider;
pub mod provisioning;
pub mod rbac;
pub mod sessions;
pub mod startup;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod tenants;
pub mod tokens;
pub mod user_admin;
