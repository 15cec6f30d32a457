//! The family table: one line per signal family. A line names the family's variant,
//! its configuration key and its definition type; the macro turns the table into
//! [`SignalFamily`], the family lists of [`SignalsConfig`] and the engine's build
//! loop. Adding a family is one file (the definition type implementing
//! [`FamilyConfig`], the signal implementing [`Signal`]) plus one line here.

use super::*;

/// Expands the family table.
macro_rules! families {
    ($($(#[doc = $doc:literal])+ $variant:ident $key:ident: $config:ty,)+) => {
        /// The families of signals.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum SignalFamily {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl SignalFamily {
            /// Every family, in the order configuration lists them.
            pub const ALL: [SignalFamily; [$(stringify!($key)),+].len()] =
                [$(SignalFamily::$variant),+];

            /// The name used in configuration (`keyword`, `context`).
            pub fn name(self) -> &'static str {
                match self {
                    $(SignalFamily::$variant => stringify!($key),)+
                }
            }
        }

        /// The signal definitions of a configuration, by family, and what they share.
        #[derive(Debug, Clone, Default, Deserialize, Serialize)]
        #[serde(deny_unknown_fields)]
        pub struct SignalsConfig {
            /// The embedding model, needed by the families that read embeddings.
            #[serde(default)]
            pub model: Option<EmbeddingModelConfig>,
            /// Where caller identities come from (needed by authz signals).
            #[serde(default)]
            pub identity: Option<IdentityConfig>,
            $(
                $(#[doc = $doc])+
                #[serde(default)]
                pub $key: Vec<$config>,
            )+
            /// Deadlines and failure rules: `default`, and `family.name` for one signal.
            #[serde(default)]
            pub limits: BTreeMap<String, SignalLimit>,
            /// Bytes of each text that scanning signals (keyword, PII, jailbreak
            /// patterns, risk, re-ask, structural cues) read: a longer text is read
            /// as its first and last halves of the window (default 64 KiB; at least
            /// 1,024). Token counts and the context signal always see the whole text.
            #[serde(default)]
            pub scan_window_bytes: Option<usize>,
        }

        impl SignalsConfig {
            /// The first definition, in table order, that needs the embedding model:
            /// its family, position and name.
            pub(super) fn model_user(&self) -> Option<(&'static str, usize, &str)> {
                None$(.or_else(|| {
                    model_user(&self.$key).map(|(i, name)| (stringify!($key), i, name))
                }))+
            }

            /// Builds every definition, family by family in table order.
            pub(super) fn build_signals(
                &self,
                context: &BuildContext<'_>,
            ) -> Result<Vec<Box<dyn Signal>>, SignalConfigError> {
                let mut signals: Vec<Box<dyn Signal>> = Vec::new();
                $(family(&mut signals, stringify!($key), &self.$key, context)?;)+
                Ok(signals)
            }
        }
    };
}

families! {
    /// Keyword lists matched against the request text.
    Keyword keyword: crate::keyword::KeywordSignalConfig,
    /// The request's context length in tokens.
    Context context: crate::context::ContextSignalConfig,
    /// Similarity of the request to exemplar sentences (needs `model`).
    Embedding embedding: crate::embedding::EmbeddingSignalConfig,
    /// Personal data and secrets in the request.
    Pii pii: crate::pii::PiiSignalConfig,
    /// The language of the latest user turn.
    Language language: crate::language::LanguageSignalConfig,
    /// The shape of the conversation (turns by role, tools, modalities, session).
    Structure structure: crate::structure::StructureSignalConfig,
    /// The latest user turn complains about the previous answer.
    UserFeedback user_feedback: crate::feedback::UserFeedbackSignalConfig,
    /// The latest user turn repeats an earlier one.
    Reask reask: crate::feedback::ReaskSignalConfig,
    /// Values of request headers and of the request's `metadata` object.
    Metadata metadata: crate::metadata::MetadataSignalConfig,
    /// The subject of the request, from a classifier over its embedding (needs `model`).
    Domain domain: crate::domain::DomainSignalConfig,
    /// Jailbreak and prompt-injection attempts (their contrast layer needs `model`).
    Jailbreak jailbreak: crate::jailbreak::JailbreakSignalConfig,
    /// The request seeks verifiable facts (needs `model`).
    FactCheck fact_check: crate::contrast::FactCheckSignalConfig,
    /// How demanding the request is: easy, medium or hard (needs `model`).
    Complexity complexity: crate::contrast::ComplexitySignalConfig,
    /// A caller preference, by exemplars (needs `model`).
    Preference preference: crate::contrast::PreferenceSignalConfig,
    /// The caller's verified identity and roles (needs `identity`).
    Authz authz: crate::authz::AuthzSignalConfig,
    /// How risky the conversation has become over its user turns.
    Risk risk: crate::risk::RiskSignalConfig,
    /// How a verified caller has behaved across its requests (decaying, shared).
    Reputation reputation: crate::reputation::ReputationSignalConfig,
    /// Labels from a knowledge base of labelled exemplars (needs `model`).
    Kb kb: crate::kb::KbSignalConfig,
    /// Scores, bands and partitions derived from other signals.
    Projection projection: crate::projection::ProjectionSignalConfig,
}

/// What a family's definition type tells the engine: its name, whether it needs the
/// embedding model, and how it builds its signal.
pub(crate) trait FamilyConfig {
    /// The signal a definition builds.
    type Signal: Signal + 'static;
    /// The definition's name, as routes refer to it.
    fn name(&self) -> &str;
    /// Whether the signal reads the embedding model (the engine then loads it, and
    /// refuses a configuration without one).
    fn needs_model(&self) -> bool {
        false
    }
    /// Builds the signal; the reason it cannot is reported with the definition's
    /// family, position and name.
    fn build(&self, context: &BuildContext<'_>) -> Result<Self::Signal, String>;
}

/// What the engine has loaded for the signals of one configuration while it builds
/// them: the embedding model with its exemplar cache, and the domain head, loaded
/// on first use.
pub(crate) struct BuildContext<'a> {
    pub(super) model: Option<(&'a Embedder, &'a ExemplarCache)>,
    pub(super) model_config: Option<&'a EmbeddingModelConfig>,
    pub(super) identity: bool,
    pub(super) head: OnceCell<Arc<LinearHead>>,
}

impl BuildContext<'_> {
    /// The embedding model and its exemplar cache, when one is configured.
    pub(crate) fn model(&self) -> Option<(&Embedder, &ExemplarCache)> {
        self.model
    }

    /// The embedding model, for signals that cannot do without it.
    pub(crate) fn require_model(&self) -> Result<(&Embedder, &ExemplarCache), String> {
        self.model.ok_or_else(|| {
            "needs signals.model (a model folder; scripts/fetch-model.sh installs the default)"
                .to_owned()
        })
    }

    /// The domain head (`signals.model.domain_head`, or the built-in one), checked
    /// against the model and loaded once for every domain signal.
    pub(crate) fn domain_head(&self) -> Result<Arc<LinearHead>, String> {
        if let Some(head) = self.head.get() {
            return Ok(Arc::clone(head));
        }
        let (embedder, _) = self.require_model()?;
        let loaded = crate::domain::load_head(
            self.model_config.and_then(|m| m.domain_head.as_deref()),
            embedder.name(),
            embedder.dimension(),
        )
        .map_err(|reason| format!("signals.model.domain_head: {reason}"))?;
        Ok(Arc::clone(self.head.get_or_init(|| Arc::new(loaded))))
    }

    /// Whether `signals.identity` is configured.
    pub(crate) fn has_identity(&self) -> bool {
        self.identity
    }
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
fn family<C: FamilyConfig>(
    signals: &mut Vec<Box<dyn Signal>>,
    family: &'static str,
    configs: &[C],
    context: &BuildContext<'_>,
) -> Result<(), SignalConfigError> {
    for (index, c) in configs.iter().enumerate() {
        let signal = c.build(context).map_err(|reason| SignalConfigError {
            family,
            index,
            name: c.name().to_owned(),
            reason,
        })?;
        signals.push(Box::new(signal));
    }
    Ok(())
}

/// The first definition of `configs` that needs the model, with its position.
fn model_user<C: FamilyConfig>(configs: &[C]) -> Option<(usize, &str)> {
    configs
        .iter()
        .enumerate()
        .find(|(_, c)| c.needs_model())
        .map(|(i, c)| (i, c.name()))
}
