//! Who is asking and what they may do, and how the API says no: bearer tokens (or
//! `?token=` where a browser cannot set headers), scopes, and JSON errors that name what
//! is wrong.

use std::sync::Arc;

use amico_core::{AcdError, AcdSnapshot};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ops::state::HttpState;
pub(crate) use crate::ops::tokens::Principal;
use crate::runner::Refused;

/// An API error: a status, a stable code and a message that names what is wrong.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// The body of every error.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable, for programs: `unauthorized`, `forbidden`, `not_found`, `bad_request`,
    /// `conflict`, `unavailable`.
    code: String,
    /// For people: names the field, the value and the reason.
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl ApiError {
    /// The ACD's refusal, its ids turned into the names the API uses.
    pub(crate) fn refused(refused: Refused, snapshot: &AcdSnapshot) -> ApiError {
        let mut error = ApiError::from(refused);
        error.message = named(&error.message, snapshot);
        error
    }
}

/// `agent#3` and `queue#1` in a message become `agent 'anna'` and `queue 'comune'`, `call#7`
/// becomes `call 7`.
pub(crate) fn named(message: &str, snapshot: &AcdSnapshot) -> String {
    let mut message = message.to_owned();
    // Longest ids first: agent#12 before agent#1.
    for agent in snapshot.agents.iter().rev() {
        message = message.replace(&agent.id.to_string(), &format!("agent '{}'", agent.name));
    }
    for queue in snapshot.queues.iter().rev() {
        message = message.replace(&queue.id.to_string(), &format!("queue '{}'", queue.name));
    }
    message.replace("call#", "call ")
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Stopped => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the server is shutting down",
            ),
            Refused::Acd(error) => {
                let status = match &error {
                    AcdError::Config(_) | AcdError::FixedWhileRunning { .. } => {
                        StatusCode::BAD_REQUEST
                    }
                    AcdError::UnknownAgent(_)
                    | AcdError::UnknownQueue(_)
                    | AcdError::UnknownCall(_) => StatusCode::NOT_FOUND,
                    _ => StatusCode::CONFLICT,
                };
                let code = match status {
                    StatusCode::BAD_REQUEST => "bad_request",
                    StatusCode::NOT_FOUND => "not_found",
                    _ => "conflict",
                };
                ApiError::new(status, code, error.to_string())
            }
        }
    }
}

/// A JSON body whose errors are JSON too, naming the field.
pub(crate) struct Body<T>(pub(crate) T);

impl<S, T> FromRequest<S> for Body<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(ApiError::bad_request(format!(
                "the body: {}",
                rejection.body_text()
            ))),
        }
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

impl FromRequestParts<Arc<HttpState>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<HttpState>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .map(str::trim);
        let secret = match header {
            Some(value) => match value.split_once(' ') {
                Some((scheme, secret)) if scheme.eq_ignore_ascii_case("bearer") => {
                    Some(secret.trim().to_owned())
                }
                _ => {
                    return Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "the Authorization header must be 'Bearer TOKEN'",
                    ));
                }
            },
            None => Query::<TokenQuery>::try_from_uri(&parts.uri)
                .ok()
                .and_then(|Query(q)| q.token),
        };
        let Some(secret) = secret else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a token is needed: 'Authorization: Bearer TOKEN' or ?token=TOKEN",
            ));
        };
        state.tokens.load().find(&secret).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the token is not known",
            )
        })
    }
}

impl Principal {
    /// Only supervisors.
    pub(crate) fn supervisor(&self) -> Result<(), ApiError> {
        match self {
            Principal::Supervisor(_) => Ok(()),
            Principal::Agent { token, .. } => Err(ApiError::forbidden(format!(
                "token '{token}' is an agent token; this needs a supervisor token"
            ))),
        }
    }

    /// Supervisors, or the agent itself.
    pub(crate) fn may_act_for(&self, agent: &str) -> Result<(), ApiError> {
        match self {
            Principal::Supervisor(_) => Ok(()),
            Principal::Agent { agent: own, .. } if own == agent => Ok(()),
            Principal::Agent { token, agent: own } => Err(ApiError::forbidden(format!(
                "token '{token}' acts for agent '{own}' only, not for '{agent}'"
            ))),
        }
    }
}
