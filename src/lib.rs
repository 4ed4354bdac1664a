//! Portcullis: a multi-tenant OAuth 2.0 / OpenID Connect identity provider.
//!
//! Layers: transport in [`http`], one domain module per thing users talk about
//! ([`tenants`], [`clients`], [`accounts`], [`sessions`], [`tokens`], [`keys`], [`rbac`],
//! [`authorization`], [`audit`]), and SQL only in [`storage`].

pub mod accounts;
pub mod api_keys;
pub mod audit;
pub mod authorization;
pub mod cli;
pub mod clients;
pub mod config;
pub mod crypto;
pub mod demo;
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
