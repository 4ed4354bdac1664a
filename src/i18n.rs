//! Page texts in English and Brazilian Portuguese, chosen by `ui_locales`, then
//! `Accept-Language` (OpenID Connect Core §3.1.2.1).

pub const SUPPORTED: [&str; 2] = ["en", "pt-BR"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    En,
    PtBr,
}

impl Locale {
    pub fn tag(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::PtBr => "pt-BR",
        }
    }

    pub fn texts(self) -> &'static Texts {
        match self {
            Locale::En => &EN,
            Locale::PtBr => &PT_BR,
        }
    }

    fn from_tag(tag: &str) -> Option<Self> {
        let tag = tag.trim().to_ascii_lowercase();
        if tag == "pt" || tag.starts_with("pt-") {
            Some(Locale::PtBr)
        } else if tag == "en" || tag.starts_with("en-") {
            Some(Locale::En)
        } else {
            None
        }
    }
}

/// `ui_locales` (space-separated, in order of preference) wins; then `Accept-Language`
/// (by q-value); English otherwise.
pub fn negotiate(ui_locales: Option<&str>, accept_language: Option<&str>) -> Locale {
    if let Some(found) = ui_locales.and_then(|u| u.split(' ').find_map(Locale::from_tag)) {
        return found;
    }
    let mut best: Option<(f32, Locale)> = None;
    for part in accept_language.unwrap_or("").split(',') {
        let mut pieces = part.split(';');
        let tag = pieces.next().unwrap_or("");
        let q = pieces
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        if let Some(l) = Locale::from_tag(tag) {
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, l));
            }
        }
    }
    best.map_or(Locale::En, |(_, l)| l)
}

pub struct Texts {
    pub sign_in_title: &'static str,
    pub email: &'static str,
    pub password: &'static str,
    pub sign_in: &'static str,
    pub invalid_credentials: &'static str,
    pub account_locked: &'static str,
    /// "Too many requests. Try again in" (followed by a number of seconds).
    pub rate_limited: &'static str,
    /// A page's form arrived in another encoding than a browser's form.
    pub form_not_form: &'static str,
    /// A page's form exceeds the body limit.
    pub form_too_large: &'static str,
    pub seconds: &'static str,
    pub address_banned: &'static str,
    pub mfa_title: &'static str,
    pub account_title: &'static str,
    pub current_password: &'static str,
    pub change_password: &'static str,
    pub password_changed: &'static str,
    pub mfa_on: &'static str,
    pub mfa_off: &'static str,
    pub set_up: &'static str,
    pub disable: &'static str,
    pub regenerate_codes: &'static str,
    pub remaining_codes: &'static str,
    pub sessions_title: &'static str,
    pub this_device: &'static str,
    pub sign_out_everywhere: &'static str,
    pub mfa_disabled_notice: &'static str,
    pub mfa_enroll_title: &'static str,
    pub mfa_enroll_intro: &'static str,
    pub secret_label: &'static str,
    pub backup_codes_title: &'static str,
    pub backup_codes_intro: &'static str,
    pub email_verified_title: &'static str,
    pub email_verified_text: &'static str,
    pub link_invalid: &'static str,
    pub reset_title: &'static str,
    pub new_password: &'static str,
    pub set_password: &'static str,
    pub password_set_text: &'static str,
    pub mfa_intro: &'static str,
    pub authentication_code: &'static str,
    pub verify: &'static str,
    pub invalid_code: &'static str,
    pub minutes: &'static str,
    pub continue_as: &'static str,
    pub use_another_account: &'static str,
    pub consent_title: &'static str,
    pub consent_intro: &'static str,
    pub allow: &'static str,
    pub deny: &'static str,
    pub signed_in_as: &'static str,
    pub logout_title: &'static str,
    pub logout_question: &'static str,
    pub sign_out: &'static str,
    pub stay_signed_in: &'static str,
    pub logged_out_title: &'static str,
    pub logged_out_text: &'static str,
    pub error_title: &'static str,
    pub reference: &'static str,
    pub continue_label: &'static str,
    pub request_expired: &'static str,
    pub continue_with_google: &'static str,
    pub single_sign_on: &'static str,
    pub or: &'static str,
    pub no_sso_for_domain: &'static str,
    pub sso_failed_title: &'static str,
    pub slo_failed_title: &'static str,
    pub return_to_app: &'static str,
    pub scope_openid: &'static str,
    pub scope_profile: &'static str,
    pub scope_email: &'static str,
    pub scope_offline_access: &'static str,
    pub link_title: &'static str,
    /// `{email}` and `{connection}` are filled in.
    pub link_text: &'static str,
    pub link_button: &'static str,
    pub linked_title: &'static str,
    pub linked_none: &'static str,
    pub linked_since: &'static str,
    pub last_used: &'static str,
    pub link_action: &'static str,
    pub unlink_action: &'static str,
    /// `{connection}` is filled in.
    pub linked_notice: &'static str,
    pub unlinked_notice: &'static str,
    pub sign_in_with_passkey: &'static str,
    pub passkey_failed: &'static str,
    pub passkeys_title: &'static str,
    pub passkeys_none: &'static str,
    pub passkey_name: &'static str,
    pub add_passkey: &'static str,
    pub passkey_added: &'static str,
    pub passkey_removed: &'static str,
    pub passkey_created: &'static str,
    pub passkeys_need_script: &'static str,
    pub use_passkey: &'static str,
    pub mfa_passkey_intro: &'static str,
    pub mfa_enroll_passkey_intro: &'static str,
    pub remove: &'static str,
    pub never: &'static str,
}

impl Texts {
    /// A scope in words (unknown scopes are shown as they are).
    pub fn scope<'a>(&self, scope: &'a str) -> &'a str
    where
        'static: 'a,
    {
        match scope {
            "openid" => self.scope_openid,
            "profile" => self.scope_profile,
            "email" => self.scope_email,
            "offline_access" => self.scope_offline_access,
            other => other,
        }
    }
}

pub static EN: Texts = Texts {
    sign_in_title: "Sign in",
    email: "Email",
    password: "Password",
    sign_in: "Sign in",
    invalid_credentials: "The email or password is incorrect.",
    account_locked: "Too many failed sign-ins. Try again in",
    rate_limited: "Too many requests. Try again in",
    form_not_form: "The form could not be read: it was not sent as a web form (application/x-www-form-urlencoded).",
    form_too_large: "The form is too large.",
    seconds: "seconds.",
    address_banned: "Requests from your network address are blocked.",
    mfa_title: "Two-step verification",
    account_title: "Your account",
    current_password: "Current password",
    change_password: "Change password",
    password_changed: "Your password was changed. Other applications will ask you to sign in again.",
    mfa_on: "On",
    mfa_off: "Off: add a second factor to protect your account.",
    set_up: "Set up",
    disable: "Turn off",
    regenerate_codes: "New backup codes",
    remaining_codes: "unused backup codes",
    sessions_title: "Where you are signed in",
    this_device: "this device",
    sign_out_everywhere: "Sign out everywhere",
    mfa_disabled_notice: "Two-step verification is off.",
    mfa_enroll_title: "Set up two-step verification",
    mfa_enroll_intro: "This organisation requires a second factor. Scan the QR code with an authenticator app (or type the key), then enter the 6-digit code it shows.",
    secret_label: "Key",
    backup_codes_title: "Your backup codes",
    backup_codes_intro: "Keep these codes somewhere safe. Each works once if you lose your authenticator. They will not be shown again.",
    email_verified_title: "E-mail address confirmed",
    email_verified_text: "Thank you: your e-mail address is confirmed. You can close this page.",
    link_invalid: "This link is invalid, has expired or was already used.",
    reset_title: "Choose a new password",
    new_password: "New password",
    set_password: "Set password",
    password_set_text: "Your password was changed and you were signed out everywhere. Sign in again from your application.",
    mfa_intro: "Enter the 6-digit code from your authenticator app, or one of your backup codes.",
    authentication_code: "Authentication code",
    verify: "Verify",
    invalid_code: "The code is not valid. Try again.",
    minutes: "minutes.",
    continue_as: "Continue as",
    use_another_account: "Use another account",
    consent_title: "Allow access",
    consent_intro: "wants to:",
    allow: "Allow",
    deny: "Deny",
    signed_in_as: "Signed in as",
    logout_title: "Sign out",
    logout_question: "Do you want to sign out?",
    sign_out: "Sign out",
    stay_signed_in: "Stay signed in",
    logged_out_title: "Signed out",
    logged_out_text: "You have been signed out.",
    error_title: "Something went wrong",
    reference: "Reference",
    continue_label: "Continue",
    request_expired: "This sign-in request has expired or was already completed. Start again from the application.",
    continue_with_google: "Continue with Google",
    single_sign_on: "Single sign-on",
    or: "or",
    no_sso_for_domain: "Single sign-on is not set up for this e-mail domain. Sign in with your password.",
    sso_failed_title: "Single sign-on failed",
    slo_failed_title: "Sign-out failed",
    return_to_app: "Return to the application",
    scope_openid: "Confirm your identity",
    scope_profile: "See your name and profile details",
    scope_email: "See your email address",
    scope_offline_access: "Keep access while you are away",
    link_title: "Link your sign-in method",
    link_text: "An account with the address {email} already exists. To use {connection} for this account, sign in once with the method you already use; {connection} is then linked and will sign you in from now on.",
    link_button: "Sign in to link",
    linked_title: "Linked sign-in methods",
    linked_none: "No other sign-in method is linked to this account.",
    linked_since: "linked",
    last_used: "last used",
    link_action: "Link",
    unlink_action: "Unlink",
    linked_notice: "{connection} is now linked to your account.",
    unlinked_notice: "The sign-in method was unlinked.",    sign_in_with_passkey: "Sign in with a passkey",
    passkey_failed: "The passkey could not be used. Try again, or sign in with your password.",
    passkeys_title: "Passkeys",
    passkeys_none: "No passkey is registered for this account.",
    passkey_name: "Name of the new passkey",
    add_passkey: "Add a passkey",
    passkey_added: "The passkey was added. You can sign in with it from now on.",
    passkey_removed: "The passkey was removed.",
    passkey_created: "added",
    passkeys_need_script: "Adding a passkey needs JavaScript and a browser with passkeys.",
    use_passkey: "Use a passkey",
    mfa_passkey_intro: "Confirm that it is you with one of your passkeys.",
    mfa_enroll_passkey_intro: "Or add a passkey (your device's screen lock, a security key or a password manager) as your second factor.",
    remove: "Remove",
    never: "never",
};

pub static PT_BR: Texts = Texts {
    sign_in_title: "Entrar",
    email: "E-mail",
    password: "Senha",
    sign_in: "Entrar",
    invalid_credentials: "O e-mail ou a senha estão incorretos.",
    account_locked: "Muitas tentativas de acesso sem sucesso. Tente novamente em",
    rate_limited: "Muitas solicitações. Tente novamente em",
    form_not_form: "Não foi possível ler o formulário: ele não foi enviado como formulário web (application/x-www-form-urlencoded).",
    form_too_large: "O formulário é grande demais.",
    seconds: "segundos.",
    address_banned: "As solicitações do seu endereço de rede estão bloqueadas.",
    mfa_title: "Verificação em duas etapas",
    account_title: "Sua conta",
    current_password: "Senha atual",
    change_password: "Alterar senha",
    password_changed: "Sua senha foi alterada. Os outros aplicativos pedirão que você entre novamente.",
    mfa_on: "Ativada",
    mfa_off: "Desativada: adicione um segundo fator para proteger sua conta.",
    set_up: "Configurar",
    disable: "Desativar",
    regenerate_codes: "Novos códigos de recuperação",
    remaining_codes: "códigos de recuperação não usados",
    sessions_title: "Onde você está conectado",
    this_device: "este dispositivo",
    sign_out_everywhere: "Sair de todos os dispositivos",
    mfa_disabled_notice: "A verificação em duas etapas está desativada.",
    mfa_enroll_title: "Configure a verificação em duas etapas",
    mfa_enroll_intro: "Esta organização exige um segundo fator. Leia o código QR com um aplicativo autenticador (ou digite a chave) e informe o código de 6 dígitos exibido.",
    secret_label: "Chave",
    backup_codes_title: "Seus códigos de recuperação",
    backup_codes_intro: "Guarde estes códigos em lugar seguro. Cada um funciona uma vez se você perder o autenticador. Eles não serão exibidos novamente.",
    email_verified_title: "E-mail confirmado",
    email_verified_text: "Obrigado: seu endereço de e-mail foi confirmado. Você pode fechar esta página.",
    link_invalid: "Este link é inválido, expirou ou já foi usado.",
    reset_title: "Escolha uma nova senha",
    new_password: "Nova senha",
    set_password: "Definir senha",
    password_set_text: "Sua senha foi alterada e todas as sessões foram encerradas. Entre novamente pelo seu aplicativo.",
    mfa_intro: "Digite o código de 6 dígitos do seu aplicativo autenticador ou um dos seus códigos de recuperação.",
    authentication_code: "Código de autenticação",
    verify: "Verificar",
    invalid_code: "O código não é válido. Tente novamente.",
    minutes: "minutos.",
    continue_as: "Continuar como",
    use_another_account: "Usar outra conta",
    consent_title: "Permitir acesso",
    consent_intro: "quer:",
    allow: "Permitir",
    deny: "Negar",
    signed_in_as: "Conectado como",
    logout_title: "Sair",
    logout_question: "Deseja sair?",
    sign_out: "Sair",
    stay_signed_in: "Continuar conectado",
    logged_out_title: "Você saiu",
    logged_out_text: "Sua sessão foi encerrada.",
    error_title: "Algo deu errado",
    reference: "Referência",
    continue_label: "Continuar",
    request_expired:
        "Este pedido de acesso expirou ou já foi concluído. Comece de novo pelo aplicativo.",
    continue_with_google: "Continuar com o Google",
    single_sign_on: "Login único (SSO)",
    or: "ou",
    no_sso_for_domain: "O login único não está configurado para este domínio de e-mail. Entre com sua senha.",
    sso_failed_title: "O login único falhou",
    slo_failed_title: "A saída falhou",
    return_to_app: "Voltar ao aplicativo",
    scope_openid: "Confirmar sua identidade",
    scope_profile: "Ver seu nome e dados do perfil",
    scope_email: "Ver seu endereço de e-mail",
    scope_offline_access: "Manter o acesso enquanto você estiver ausente",
    link_title: "Vincule seu método de login",
    link_text: "Já existe uma conta com o endereço {email}. Para usar {connection} nesta conta, entre uma vez com o método que você já usa; {connection} fica então vinculado e passa a fazer seu login.",
    link_button: "Entrar para vincular",
    linked_title: "Métodos de login vinculados",
    linked_none: "Nenhum outro método de login está vinculado a esta conta.",
    linked_since: "vinculado em",
    last_used: "último uso",
    link_action: "Vincular",
    unlink_action: "Desvincular",
    linked_notice: "{connection} agora está vinculado à sua conta.",
    unlinked_notice: "O método de login foi desvinculado.",    sign_in_with_passkey: "Entrar com uma chave de acesso",
    passkey_failed: "Não foi possível usar a chave de acesso. Tente de novo ou entre com sua senha.",
    passkeys_title: "Chaves de acesso",
    passkeys_none: "Nenhuma chave de acesso está registrada nesta conta.",
    passkey_name: "Nome da nova chave de acesso",
    add_passkey: "Adicionar uma chave de acesso",
    passkey_added: "A chave de acesso foi adicionada. A partir de agora você pode entrar com ela.",
    passkey_removed: "A chave de acesso foi removida.",
    passkey_created: "adicionada em",
    passkeys_need_script: "Adicionar uma chave de acesso requer JavaScript e um navegador com chaves de acesso.",
    use_passkey: "Usar uma chave de acesso",
    mfa_passkey_intro: "Confirme que é você com uma das suas chaves de acesso.",
    mfa_enroll_passkey_intro: "Ou adicione uma chave de acesso (o bloqueio de tela do seu dispositivo, uma chave de segurança ou um gerenciador de senhas) como segundo fator.",
    remove: "Remover",
    never: "nunca",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_locales_wins_over_accept_language() {
        assert_eq!(negotiate(Some("pt-BR en"), Some("en")), Locale::PtBr);
    }

    #[test]
    fn accept_language_is_ranked_by_quality() {
        assert_eq!(negotiate(None, Some("en;q=0.5, pt-BR;q=0.9")), Locale::PtBr);
        assert_eq!(negotiate(None, Some("fr")), Locale::En);
    }
}
