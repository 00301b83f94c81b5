//! The event types the component handles, one file each; dispatch by type. Any other type
//! is acknowledged and ignored (`204`), without reading the configuration.

pub mod pending;
pub mod pod_change;
pub mod release;

use crate::cloudevents::{ReceivedEvent, Reply};
use crate::config::Config;
use crate::host::Host;
use crate::kube::calls::CallFailure;
use crate::pod::lifecycle::Change;
use crate::respond::{Handled, Outcome};

/// Hands the event to the handler of its type, with the configuration (`loaded` already, or
/// loaded now): a bad variable answers `500` before the handler does anything.
pub fn dispatch(event: &ReceivedEvent, host: &mut impl Host, loaded: Option<Config>) -> Handled {
    match event.event_type.as_str() {
        pending::TYPE => configured(host, loaded, |config, api| pending::handle(event, config, api)),
        pod_change::UPDATED => {
            configured(host, loaded, |config, api| pod_change::handle(event, Change::Updated, config, api))
        }
        pod_change::DELETED => {
            configured(host, loaded, |config, api| pod_change::handle(event, Change::Deleted, config, api))
        }
        release::TYPE => configured(host, loaded, |config, api| release::handle(event, config, api)),
        _ => Handled::new(Outcome::Ignored(None)),
    }
}

fn configured<H: Host>(
    host: &mut H,
    loaded: Option<Config>,
    handler: impl FnOnce(&Config, &mut H) -> Handled,
) -> Handled {
    match loaded.map_or_else(|| Config::load(|name| host.variable(name)), Ok) {
        Ok(config) => handler(&config, host),
        Err(error) => Handled::new(Outcome::Misconfigured(error.to_string())),
    }
}

/// What an API exchange that failed means for the event: a refusal is the handler's
/// `failed` reply; the rest is the same for every handler.
pub fn failure_outcome(failure: CallFailure, failed: impl FnOnce(String) -> Reply) -> Outcome {
    match failure {
        CallFailure::Refused(message) => Outcome::Failed(failed(message)),
        CallFailure::Unavailable { message, retry_after } => Outcome::Retry { message, retry_after },
        CallFailure::Misconfigured(message) => Outcome::Misconfigured(message),
    }
}
