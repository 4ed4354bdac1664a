//! The error page ([`crate::error::PageError`] renders it: the message and the correlation
//! id, never a cause) and the frame every page is drawn in (`templates/base.html`).

use askama::Template;

use crate::i18n::Texts;

/// What every page's frame (`base.html`) shows.
pub struct Frame<'a> {
    pub lang: &'static str,
    pub t: &'static Texts,
    pub tenant_name: &'a str,
    pub logo_url: Option<&'a str>,
    pub branding_css: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/error/error.html")]
pub struct ErrorPage<'a> {
    pub f: Frame<'a>,
    pub message: &'a str,
    pub link: Option<(&'a str, &'static str)>,
    pub correlation_id: &'a str,
}
