//! How a resource server proves itself to the introspection endpoint (RFC
//! 7662 2.1 requires it): a client secret in the `Authorization` header or in
//! the form (RFC 6749 2.3.1), or a JWT signed with the client's private key
//! (`private_key_jwt`, RFC 7523 2.2).

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;

use crate::claims::NumericDate;
use crate::error::ConfigError;
use crate::keys::Key;
use crate::token::Signer;

/// The client credentials an introspection request carries.
#[derive(Clone)]
pub struct ClientAuth {
    client_id: String,
    method: Method,
}

#[derive(Clone)]
enum Method {
    SecretBasic(String),
    SecretPost(String),
    PrivateKeyJwt(Arc<Signer>),
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret.
        f.debug_struct("ClientAuth")
            .field("client_id", &self.client_id)
            .field("method", &self.method_name())
            .finish()
    }
}

impl ClientAuth {
    /// `client_secret_basic`: HTTP Basic with the client id and secret (each
    /// form-urlencoded first, as RFC 6749 2.3.1 says). What most providers
    /// expect by default.
    pub fn secret_basic(client_id: impl Into<String>, secret: impl Into<String>) -> ClientAuth {
        ClientAuth {
            client_id: client_id.into(),
            method: Method::SecretBasic(secret.into()),
        }
    }

    /// `client_secret_post`: the client id and secret in the request's form.
    pub fn secret_post(client_id: impl Into<String>, secret: impl Into<String>) -> ClientAuth {
        ClientAuth {
            client_id: client_id.into(),
            method: Method::SecretPost(secret.into()),
        }
    }

    /// `private_key_jwt` (RFC 7523): each request carries a short-lived JWT
    /// (`iss` and `sub` the client id, `aud` the endpoint called, a fresh
    /// `jti`, 60 s) signed with `key`, an asymmetric private key whose public
    /// half the authorization server holds. No secret is shared.
    pub fn private_key_jwt(
        client_id: impl Into<String>,
        key: Key,
    ) -> Result<ClientAuth, ConfigError> {
        if key.algorithm().is_hmac() {
            return Err(ConfigError::unusable_key(
                "private_key_jwt signs with a private key, not an HMAC secret",
            ));
        }
        let signer = Signer::new(&key).ok_or_else(|| {
            ConfigError::unusable_key("private_key_jwt needs a private key that can sign")
        })?;
        Ok(ClientAuth {
            client_id: client_id.into(),
            method: Method::PrivateKeyJwt(Arc::new(signer)),
        })
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The method's name, as discovery documents list them.
    pub fn method_name(&self) -> &'static str {
        match self.method {
            Method::SecretBasic(_) => "client_secret_basic",
            Method::SecretPost(_) => "client_secret_post",
            Method::PrivateKeyJwt(_) => "private_key_jwt",
        }
    }

    /// Puts the credentials on a request to `endpoint`: into `form`, or as
    /// the `Authorization` header returned.
    pub(crate) fn apply(
        &self,
        endpoint: &str,
        form: &mut Form,
    ) -> Result<Option<HeaderValue>, crate::error::IssueError> {
        match &self.method {
            Method::SecretBasic(secret) => {
                let mut pair = Form::default();
                pair.push_encoded(&self.client_id);
                pair.0.push(':');
                pair.push_encoded(secret);
                let value = format!("Basic {}", STANDARD.encode(pair.0));
                HeaderValue::try_from(value)
                    .map(Some)
                    .map_err(|e| crate::error::IssueError(e.to_string()))
            }
            Method::SecretPost(secret) => {
                form.field("client_id", &self.client_id);
                form.field("client_secret", secret);
                Ok(None)
            }
            Method::PrivateKeyJwt(signer) => {
                let now = NumericDate::now().as_secs_f64().floor() as u64;
                let assertion = signer.sign(&serde_json::json!({
                    "iss": self.client_id,
                    "sub": self.client_id,
                    "aud": endpoint,
                    "jti": uuid::Uuid::new_v4().to_string(),
                    "iat": now,
                    "exp": now + 60,
                }))?;
                form.field("client_id", &self.client_id);
                form.field(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                );
                form.field("client_assertion", &assertion);
                Ok(None)
            }
        }
    }
}

/// An `application/x-www-form-urlencoded` body.
#[derive(Clone, Default)]
pub(crate) struct Form(String);

impl Form {
    pub(crate) fn field(&mut self, name: &str, value: &str) {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        self.push_encoded(name);
        self.0.push('=');
        self.push_encoded(value);
    }

    /// Every byte but the unreserved ones percent-encoded (so `+`, `&`,
    /// `=`, `%` and `:` in a token or a secret arrive as they are).
    fn push_encoded(&mut self, text: &str) {
        for byte in text.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                self.0.push(char::from(byte));
            } else {
                self.0.push_str(&format!("%{byte:02X}"));
            }
        }
    }

    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_encoded_so_that_nothing_in_them_changes_the_request() {
        let mut form = Form::default();
        form.field("token", "a+b/c=d&e%f g");
        assert_eq!(form.into_string(), "token=a%2Bb%2Fc%3Dd%26e%25f%20g");
        let basic = ClientAuth::secret_basic("my:client", "s3cr:t+")
            .apply("https://as/introspect", &mut Form::default())
            .unwrap()
            .unwrap();
        let encoded = basic.to_str().unwrap().strip_prefix("Basic ").unwrap();
        assert_eq!(
            STANDARD.decode(encoded).unwrap(),
            b"my%3Aclient:s3cr%3At%2B"
        );
    }

    #[test]
    fn the_secret_is_never_printed() {
        let auth = ClientAuth::secret_post("api", "hunter2");
        assert!(!format!("{auth:?}").contains("hunter2"));
    }

    #[test]
    fn private_key_jwt_refuses_a_shared_secret() {
        let secret = Key::hs256([7u8; 32]).unwrap();
        assert!(ClientAuth::private_key_jwt("api", secret).is_err());
    }
}
