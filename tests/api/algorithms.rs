use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use portcullis::keys::Alg;

use crate::helpers::*;

#[tokio::test]
async fn id_tokens_signed_with_each_algorithm_verify_with_at_hash_in_an_independent_library() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (alg, core) in [
        (Alg::Rs256, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256),
        (Alg::Ps256, CoreJwsSigningAlgorithm::RsaSsaPssSha256),
        (Alg::Es256, CoreJwsSigningAlgorithm::EcdsaP256Sha256),
        (Alg::EdDsa, CoreJwsSigningAlgorithm::EdDsa),
    ] {
        let client = app
            .create_client(ClientOptions {
                alg,
                skip_consent: true,
                ..ClientOptions::default()
            })
            .await;
        let meta =
            CoreProviderMetadata::discover_async(IssuerUrl::new(app.issuer()).unwrap(), &http)
                .await
                .unwrap();
        let rp = CoreClient::from_provider_metadata(
            meta,
            ClientId::new(client.id.clone()),
            client.secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.into()).unwrap());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, _, nonce) = rp
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .url();
        let q = app
            .authorize_through_forms(&app.new_browser(), url.as_str(), "ana@example.com")
            .await;
        let tokens = rp
            .exchange_code(AuthorizationCode::new(param(&q, "code").unwrap()))
            .unwrap()
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await
            .unwrap();
        let id_token = tokens.id_token().unwrap();
        let verifier = rp.id_token_verifier().set_allowed_algs(vec![core.clone()]);
        let claims = id_token
            .claims(&verifier, &nonce)
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        let expected = AccessTokenHash::from_token(
            tokens.access_token(),
            id_token.signing_alg().unwrap(),
            id_token.signing_key(&verifier).unwrap(),
        )
        .unwrap();
        assert_eq!(
            claims.access_token_hash(),
            Some(&expected),
            "{alg:?} at_hash"
        );
    }
}
