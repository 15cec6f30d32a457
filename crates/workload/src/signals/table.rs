//! The signal definitions of a configuration, one list per family.

use super::*;

/// The signal definitions of a configuration, by family.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SignalsConfig {
    /// Keyword signals.
    #[serde(default)]
    pub keyword: Vec<KeywordSignalConfig>,
    /// Context-length signals.
    #[serde(default)]
    pub context: Vec<ContextSignalConfig>,
    /// The embedding model, needed by embedding signals.
    #[serde(default)]
    pub model: Option<EmbeddingModelConfig>,
    /// Embedding-similarity signals.
    #[serde(default)]
    pub embedding: Vec<EmbeddingSignalConfig>,
    /// PII signals.
    #[serde(default)]
    pub pii: Vec<PiiSignalConfig>,
    /// Language signals.
    #[serde(default)]
    pub language: Vec<LanguageSignalConfig>,
    /// Conversation-structure signals.
    #[serde(default)]
    pub structure: Vec<StructureSignalConfig>,
    /// User-feedback signals.
    #[serde(default)]
    pub user_feedback: Vec<UserFeedbackSignalConfig>,
    /// Re-ask signals.
    #[serde(default)]
    pub reask: Vec<ReaskSignalConfig>,
    /// Header and metadata signals.
    #[serde(default)]
    pub metadata: Vec<MetadataSignalConfig>,
    /// Domain signals (need `model`).
    #[serde(default)]
    pub domain: Vec<DomainSignalConfig>,
    /// Jailbreak and prompt-injection signals (their contrast layer needs `model`).
    #[serde(default)]
    pub jailbreak: Vec<JailbreakSignalConfig>,
    /// Fact-seeking signals (need `model`).
    #[serde(default)]
    pub fact_check: Vec<FactCheckSignalConfig>,
    /// Difficulty signals (need `model`).
    #[serde(default)]
    pub complexity: Vec<ComplexitySignalConfig>,
    /// Preference signals (need `model`).
    #[serde(default)]
    pub preference: Vec<PreferenceSignalConfig>,
    /// Where caller identities come from (needed by authz signals).
    #[serde(default)]
    pub identity: Option<IdentityConfig>,
    /// Authorization signals: the caller's roles.
    #[serde(default)]
    pub authz: Vec<AuthzSignalConfig>,
    /// Deadlines and failure rules: `default`, and `family.name` for one signal.
    #[serde(default)]
    pub limits: BTreeMap<String, SignalLimit>,
}

/// A signal definition was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signals.{family}[{index}] ({name}): {reason}")]
pub struct SignalConfigError {
    /// The family of the offending definition.
    pub family: &'static str,
    /// Its position in that family's list.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// What is wrong.
    pub reason: String,
}

/// Builds every definition of one family and adds the signals to `signals`.
pub(super) fn family<C, S: Signal + 'static>(
    signals: &mut Vec<Box<dyn Signal>>,
    family: &'static str,
    configs: &[C],
    name: impl Fn(&C) -> &String,
    build: impl Fn(&C) -> Result<S, String>,
) -> Result<(), SignalConfigError> {
    for (index, c) in configs.iter().enumerate() {
        let signal = build(c).map_err(|reason| SignalConfigError {
            family,
            index,
            name: name(c).clone(),
            reason,
        })?;
        signals.push(Box::new(signal));
    }
    Ok(())
}
