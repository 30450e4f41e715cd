//! A decision rendered as a SIP answer: the action's [`Answer`] (the client's own, else the
//! configured one) filled in with the call's values.

use std::collections::BTreeMap;

use tollgate_enum::template::{Values, Var};
use tollgate_policy::{Action, CallQuery, Decision, RedirectTarget, Termination};

use super::request::check_request_uri;
use super::response::reason_header;
use crate::config::{Answer, Answers, ClientConfig};

/// A decision's answer before it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SipAnswer {
    /// Status code.
    pub code: u16,
    /// The Contact URI (3xx).
    pub contact: Option<String>,
    /// The Reason header's value (final answers configured with one).
    pub reason: Option<String>,
}

impl SipAnswer {
    /// The built-in allow answer, used when the configured one cannot be rendered: a 302 to
    /// the Request-URI (checked before the call is decided, so it is always a usable Contact).
    pub fn builtin_allow(ruri: &str) -> Self {
        SipAnswer { code: 302, contact: Some(ruri.to_string()), reason: None }
    }
}

/// What the answers are rendered with, besides the decision.
pub(crate) struct Renderer<'a> {
    /// The configured answers.
    pub answers: &'a Answers,
    /// The asking client (its own answers win).
    pub client: &'a ClientConfig,
    /// The ENUM configuration's intercept URIs by name.
    pub intercepts: &'a BTreeMap<String, String>,
    /// The Request-URI as sent.
    pub ruri: &'a str,
    /// Its host and port (empty for `tel:`).
    pub ruri_host: &'a str,
}

impl Renderer<'_> {
    /// Renders `decision`; `None` when its answer cannot be filled in (an unknown intercept, a
    /// placeholder without a value, a Contact that is not a usable URI): the call fails open.
    pub fn render(&self, decision: &Decision, call: &CallQuery) -> Option<SipAnswer> {
        let dest = call.destination.to_string();
        let source = call.source.map(|s| s.to_string()).unwrap_or_default();
        let rule = decision.rule.as_ref().map(|r| r.name.as_ref());
        let mut values = Values {
            dest: &dest,
            source: &source,
            rule: rule.unwrap_or(""),
            ruri: self.ruri,
            ruri_host: self.ruri_host,
            ..Default::default()
        };
        let target_text;
        let (answer, cause) = match &decision.action {
            Action::Allow => (pick(&self.client.allow, &self.answers.allow), None),
            Action::Terminate(Termination::Intercept(name)) => {
                values.intercept = self.intercepts.get(name.as_ref())?.as_str();
                (pick(&self.client.terminate, &self.answers.terminate), None)
            }
            Action::Terminate(Termination::Reject(code)) => {
                values.cause = Some(*code);
                (pick(&self.client.reject, &self.answers.reject), Some(*code))
            }
            Action::Redirect(target) => {
                target_text = target.to_string();
                values.target = &target_text;
                match target {
                    RedirectTarget::Number(_) => (pick(&self.client.redirect, &self.answers.redirect), None),
                    RedirectTarget::Uri(_) => (pick(&self.client.redirect_uri, &self.answers.redirect_uri), None),
                }
            }
        };
        match *answer {
            Answer::Redirect { code, ref contact } => {
                let empty =
                    [(Var::RuriHost, self.ruri_host), (Var::Intercept, values.intercept), (Var::Target, values.target)];
                if empty.iter().any(|(var, value)| contact.uses(*var) && value.is_empty()) {
                    return None;
                }
                let mut uri = String::with_capacity(96);
                contact.render_into(&values, &mut uri);
                check_request_uri(&uri).ok()?;
                Some(SipAnswer { code, contact: Some(uri), reason: None })
            }
            Answer::Final { code, reason } => {
                let code = code.or(cause)?;
                if !(400..=699).contains(&code) {
                    return None;
                }
                Some(SipAnswer { code, contact: None, reason: reason.then(|| reason_header(code, rule)) })
            }
        }
    }
}

/// The client's own answer, else the configured one.
fn pick<'a>(own: &'a Option<Answer>, default: &'a Answer) -> &'a Answer {
    own.as_ref().unwrap_or(default)
}
