//! The supervisors' live wallboard: a static page, its script and its style sheet, built
//! into the binary from `web/` so that a deployment is the one file.
//!
//! `GET /wallboard?token=TOKEN` serves the page. It needs no state here: the script reads
//! the token from its own URL and does everything through the API (`/api/queues`,
//! `/api/agents`) and the event stream (`/api/events`), with that token. The files are
//! served with `Cache-Control: no-cache`, so a browser revalidates them and an upgraded
//! server's page is the one shown after a reload.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page: the layout of each queue's card and the places the script fills in.
const HTML: &str = include_str!("../../web/wallboard.html");
/// The script: fetches, draws, and follows the event stream.
const SCRIPT: &str = include_str!("../../web/wallboard.js");
/// The style sheet.
const STYLE: &str = include_str!("../../web/wallboard.css");

/// The wallboard's routes: `/wallboard`, `/wallboard/wallboard.js` and
/// `/wallboard/wallboard.css`. Stateless, for merging into any router.
pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/wallboard",
            get(|| async { file(HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/wallboard/wallboard.js",
            get(|| async { file(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/wallboard/wallboard.css",
            get(|| async { file(STYLE, "text/css; charset=utf-8") }),
        )
}

/// One embedded file with its type, to be revalidated on every use.
pub(crate) fn file(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_carries_its_type_and_no_cache() {
        let response = file(STYLE, "text/css; charset=utf-8");
        assert_eq!(response.status(), axum::http::StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }

    #[test]
    fn the_page_loads_the_script_and_style_from_the_routes_served() {
        assert!(HTML.contains(r#"src="/wallboard/wallboard.js""#));
        assert!(HTML.contains(r#"href="/wallboard/wallboard.css""#));
        // Nothing from elsewhere: the wall screen may have no internet.
        for text in [HTML, SCRIPT, STYLE] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
    }

    #[test]
    fn the_page_has_the_hooks_the_browser_test_reads() {
        for hook in [
            r#"data-connection="#,
            r#"data-message="#,
            r#"data-field="waiting""#,
            r#"data-field="longest-wait""#,
            r#"data-field="service-level""#,
            r#"data-field="abandon-rate""#,
            r#"data-field="abandoned""#,
            r#"data-field="agents-available""#,
            r#"data-field="survey-satisfied""#,
            r#"data-field="callers""#,
        ] {
            assert!(HTML.contains(hook), "{hook} is missing from the page");
        }
    }
}
