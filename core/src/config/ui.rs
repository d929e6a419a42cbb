use super::Problems;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    /// The page title.
    pub title: Option<String>,
}

impl UiConfig {
    pub(super) fn validate(&self, _problems: &mut Problems) {}
}
