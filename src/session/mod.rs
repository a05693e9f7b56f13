//! Sessions: logout (revocation) and refresh-token rotation with reuse
//! detection, through the revocation store; and renewing a browser
//! session's access cookie as it nears its end ([`ImplicitRefresh`]).

mod implicit;

pub use implicit::{ImplicitRefresh, ImplicitRefreshFuture, ImplicitRefreshLayer};

use serde::Serialize;

use crate::authx::AuthX;
use crate::claims::{Claims, NumericDate, TokenType};
use crate::dpop::DpopKey;
use crate::error::{AuthError, InvalidToken, IssueError};
use crate::issue::{TokenBuilder, TokenPair};
use crate::mtls::ClientCertificate;
use crate::store::{RefreshUse, SessionInfo, StoreError, TokenRecord};

impl AuthX {
    /// Whether the revocation store still vouches for verified `claims`: `Ok`
    /// unless the token or its session was revoked (or, failing closed, the
    /// store cannot answer). The layers do this for you.
    pub async fn check_revocation<E>(&self, claims: &Claims<E>) -> Result<(), AuthError> {
        let pipeline = self.pipeline();
        pipeline.revocation_verdict(pipeline.revocation_check(claims).await)
    }

    /// Revokes the login session of `claims` (every token of its refresh
    /// family), or the token alone until it expires when it belongs to no
    /// session: a logout. A write that cannot be made is `StoreUnavailable`,
    /// whatever the fail-open setting. Only claims this `AuthX` verified
    /// are taken (from a guard's extensions, `verify` or `authenticate`).
    pub async fn revoke<E>(&self, claims: &Claims<E>) -> Result<(), AuthError> {
        self.verified_here(claims)?;
        if claims.jti.is_none() && claims.fam.is_none() {
            return Err(AuthError::InvalidToken(InvalidToken::Claims(
                "the token has no jti to revoke".into(),
            )));
        }
        self.pipeline()
            .store
            .revoke(&TokenRecord::of(claims), self.horizon())
            .await
            .map_err(store_down)
    }

    /// Rotates a verified refresh token: spends it, and answers a non-fresh
    /// access token and a new refresh token in the same session, both with
    /// the refresh token's scopes and its own claims as `E` read them (with
    /// the default [`NoExtra`](crate::NoExtra), none: verify the refresh token
    /// with your claim type to carry them over). Only the session's latest
    /// refresh token can be spent: any earlier one presented again is refused
    /// with [`AuthError::RefreshReused`] and the whole session revoked, so a
    /// thief and the victim cannot both go on. A key that cannot sign, or
    /// claims that cannot be written, are [`AuthError::Issue`] (a 500) and
    /// leave the refresh token unspent. Only claims this `AuthX` verified
    /// are taken: a claim set read from anywhere else is refused.
    pub async fn rotate<E: Serialize>(&self, claims: &Claims<E>) -> Result<TokenPair, AuthError> {
        self.verified_here(claims)?;
        if claims.token_type != TokenType::Refresh {
            return Err(AuthError::WrongTokenType {
                expected: TokenType::Refresh,
                found: claims.token_type,
            });
        }
        if claims.jti.is_none() {
            return Err(AuthError::InvalidToken(InvalidToken::Claims(
                "a refresh token without jti cannot be rotated".into(),
            )));
        }
        let record = TokenRecord::of(claims);
        // Tokens from elsewhere (AuthX) carry no family: each is its own.
        let family = record.rotation_session().unwrap_or_default();
        // The successor is signed before the store moves on to it, so a key
        // that cannot sign never spends the user's refresh token.
        let issue = |e: IssueError| {
            tracing::error!(error = %e, "tower-authx: cannot issue the rotated tokens");
            AuthError::Issue(e)
        };
        // The session stays bound to the DPoP key its refresh token is bound to.
        let key = DpopKey::of(claims);
        let carry = |builder| same_session(builder, claims, family);
        let successor = carry(self.refresh_token(claims.sub.clone()));
        let next_jti = successor.claims.jti.clone().unwrap_or_default();
        let refresh_token = successor.issue().map_err(issue)?;
        // Signed before the store moves on too.
        let access_token = carry(self.access_token(claims.sub.clone()))
            .fresh(false)
            .issue()
            .map_err(issue)?;
        let verdict = self
            .pipeline()
            .store
            .spend_refresh(&record, &next_jti, self.horizon())
            .await
            .map_err(store_down)?;
        match verdict {
            RefreshUse::First => {
                // A listed session shows when it was last refreshed.
                let now = NumericDate::now().as_secs_f64() as u64;
                let noted = self.pipeline().store.session_refreshed(
                    &claims.sub,
                    family,
                    now,
                    self.horizon(),
                );
                if let Err(error) = noted.await {
                    tracing::warn!(%error, "tower-authx: a session's refresh was not noted");
                }
            }
            RefreshUse::Reused => {
                tracing::warn!(family, "tower-authx: refresh token reused; session revoked");
                return Err(AuthError::RefreshReused);
            }
            RefreshUse::FamilyRevoked => return Err(AuthError::Revoked),
        }
        Ok(TokenPair {
            access_token,
            refresh_token,
            token_type: if key.is_some() { "DPoP" } else { "bearer" },
        })
    }

    /// Lists the login session `token` belongs to (a token of a pair this
    /// `AuthX` just issued), with the login request's `User-Agent` and
    /// client address, for [`sessions`](Self::sessions) (AuthX's
    /// `create_session`). What is recorded is bounded (256 characters of
    /// user agent), and counts among the subject's store entries.
    pub async fn track_session(
        &self,
        token: &str,
        user_agent: Option<&str>,
        ip: Option<std::net::IpAddr>,
    ) -> Result<(), AuthError> {
        // A DPoP- or certificate-bound pair is listed too: no request here.
        let claims: Claims = self.pipeline().issued_claims(token)?;
        let Some(id) = claims.fam.clone() else {
            return Err(AuthError::InvalidToken(InvalidToken::Claims(
                "the token belongs to no session (fam): issue it with token_pair".into(),
            )));
        };
        let created = claims.iat.unwrap_or_else(NumericDate::now);
        let user_agent = user_agent.map(|ua| {
            ua.chars()
                .filter(|c| !c.is_control())
                .take(256)
                .collect::<String>()
        });
        let info = SessionInfo::new(id, created.as_secs_f64() as u64)
            .seen_from(user_agent, ip.map(|ip| ip.to_string()));
        self.pipeline()
            .store
            .record_session(&claims.sub, &info, self.horizon())
            .await
            .map_err(store_down)
    }

    /// The live login sessions of the subject of verified `claims` (AuthX's
    /// `list_sessions`), oldest first; the current one has the id of
    /// `claims.fam`. Logged-out and expired sessions are not listed.
    /// A client's own token ([`Claims::is_client`]) has no user's sessions:
    /// refused (403), whatever its `sub` says.
    pub async fn sessions<E>(&self, claims: &Claims<E>) -> Result<Vec<SessionInfo>, AuthError> {
        self.verified_here(claims)?;
        if claims.is_client() {
            return Err(AuthError::UnknownUser { forbidden: true });
        }
        self.pipeline()
            .store
            .sessions(&claims.sub)
            .await
            .map_err(store_down)
    }

    /// Ends the subject's session `id` (AuthX's `revoke_session`), as a
    /// logout from it would: `Ok(false)` when the subject of verified
    /// `claims` has no such live session (another user's id included).
    pub async fn end_session<E>(&self, claims: &Claims<E>, id: &str) -> Result<bool, AuthError> {
        let live = self.sessions(claims).await?;
        if !live.iter().any(|session| session.id == id) {
            return Ok(false);
        }
        self.end(&claims.sub, id).await?;
        Ok(true)
    }

    /// Ends every session of the subject but the one of verified `claims`
    /// ("log out everywhere else"); how many were ended.
    pub async fn end_other_sessions<E>(&self, claims: &Claims<E>) -> Result<usize, AuthError> {
        let live = self.sessions(claims).await?;
        let mut ended = 0;
        for session in live {
            if Some(&session.id) != claims.fam.as_ref() {
                self.end(&claims.sub, &session.id).await?;
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Revokes `subject`'s session `id`.
    async fn end(&self, subject: &str, id: &str) -> Result<(), AuthError> {
        let horizon = self.horizon();
        let record = TokenRecord {
            subject,
            jti: None,
            session: Some(id),
            issued_at: None,
            expires: horizon,
        };
        self.pipeline()
            .store
            .revoke(&record, horizon)
            .await
            .map_err(store_down)
    }

    /// Sessions move only on claims this `AuthX` verified (from a guard's
    /// extensions, an extractor, `verify` or `authenticate`), never on a claim
    /// set read or built any other way, such as from a request body.
    fn verified_here<E>(&self, claims: &Claims<E>) -> Result<(), AuthError> {
        if claims.verified_by.is(self.pipeline().id) {
            return Ok(());
        }
        Err(AuthError::InvalidToken(InvalidToken::Claims(
            "these claims were not verified by this AuthX: take them from a guard \
             (the request's extensions) or from AuthX::verify"
                .into(),
        )))
    }

    /// How long a session's entries must be remembered: as long as any token
    /// issued now could live.
    fn horizon(&self) -> NumericDate {
        let issuing = self.issuing();
        let longest = issuing.refresh_lifetime.max(issuing.access_lifetime);
        NumericDate::now().plus(longest)
    }
}

/// `builder` for a token of the same session as `claims`: its family, its
/// own claims, scopes, how the user authenticated (`acr`, `amr`), and its
/// bindings (DPoP key, client certificate).
fn same_session<'a, E: Serialize>(
    builder: TokenBuilder<'a>,
    claims: &Claims<E>,
    family: &str,
) -> TokenBuilder<'a> {
    let mut builder = builder.fam(family).extra(&claims.extra);
    if let Some(scopes) = &claims.scopes {
        builder = builder.scopes(scopes.iter().cloned());
    }
    if let Some(acr) = &claims.acr {
        builder = builder.acr(acr.clone());
    }
    if let Some(amr) = &claims.amr {
        builder = builder.amr(amr.iter().cloned());
    }
    if let Some(x5t) = claims.cnf.as_ref().and_then(|c| c.x5t_s256.as_deref()) {
        builder = builder.bound_to_certificate(&ClientCertificate::of_thumbprint(x5t));
    }
    match DpopKey::of(claims) {
        Some(key) => builder.bound_to(&key),
        None => builder,
    }
}

fn store_down(e: StoreError) -> AuthError {
    tracing::warn!(error = %e, "tower-authx: revocation store unavailable");
    AuthError::StoreUnavailable
}
