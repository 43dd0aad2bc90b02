//! Dashboard pages the domain links to in what it says (Stripe's return addresses, "buy
//! credits at …" in a 402). They live here so the domain can name them without importing the
//! web face, whose route table re-exports them.

/// The billing page: plans, credits, purchases.
pub const BILLING: &str = "/billing";

/// The billing page's full address under `public_url`.
pub fn billing(public_url: &str) -> String {
    format!("{}{BILLING}", public_url.trim_end_matches('/'))
}

/// Where a password reset link leads (the operator's `admin reset-link` prints it).
pub const RESET_PASSWORD: &str = "/reset-password";

/// A password reset link for `token` under `public_url`.
pub fn reset_password(public_url: &str, token: &str) -> String {
    format!(
        "{}{RESET_PASSWORD}?token={token}",
        public_url.trim_end_matches('/')
    )
}

/// The login page.
pub const LOGIN: &str = "/login";

/// Where "Forgot password?" leads.
pub const FORGOT_PASSWORD: &str = "/forgot-password";

/// Where a mailed sign-up link leads.
pub const CONFIRM_SIGNUP: &str = "/register/confirm";

/// A page's full address under `public_url`.
pub fn absolute(public_url: &str, path: &str) -> String {
    format!("{}{path}", public_url.trim_end_matches('/'))
}

/// A sign-up link for `token` under `public_url`.
pub fn confirm_signup(public_url: &str, token: &str) -> String {
    format!(
        "{}{CONFIRM_SIGNUP}?token={token}",
        public_url.trim_end_matches('/')
    )
}
