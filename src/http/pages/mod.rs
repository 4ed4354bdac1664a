//! The server-rendered browser pages, one file per page family: the authorization request's
//! way through them ([`flow`]), sign-in, second factor, consent, sign-out, the account page,
//! linking a sign-in method, the pages behind mail links, errors, and the assets they link.
//! What every form needs (CSRF, cookies, rendering, the frame) is in [`common`], once. No
//! inline script or style: the CSP forbids both.

pub mod account;
pub mod assets;
pub mod common;
pub mod consent;
pub mod email;
pub mod error;
pub mod flow;
pub mod link;
pub mod logout;
pub mod mfa;
pub mod sign_in;
