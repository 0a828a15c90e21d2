//! Diagnostics: every problem found in a flight, with a stable code and a position.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::source::Source;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// Stable diagnostic codes (`surface.md`): tools match on these, so never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    FrontmatterSyntax,
    UnknownKey,
    MissingTitle,
    DuplicateSlug,
    NonSlugHeading,
    InvalidSlug,
    UnknownAgent,
    Cycle,
    NeedsAndContinues,
    ContinuesNotOneToOne,
    InvalidGate,
    InvalidDuration,
    InvalidValue,
    TooManyTags,
    UnknownReference,
    ReferenceNotUpstream,
    EmptyPrompt,
    InvalidTrigger,
    InvalidCron,
    // Checks against the repository (personas, pools, configuration) and the runtimes; the
    // engine's preflight reports these, the parser never does.
    UnknownPersona,
    InvalidPersona,
    UnknownPool,
    MissingCommand,
    MissingCheckCommand,
    PlanningNeedsCodingAgent,
    NoEffect,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::FrontmatterSyntax => "frontmatter-syntax",
            Code::UnknownKey => "unknown-key",
            Code::MissingTitle => "missing-title",
            Code::DuplicateSlug => "duplicate-slug",
            Code::NonSlugHeading => "non-slug-heading",
            Code::InvalidSlug => "invalid-slug",
            Code::UnknownAgent => "unknown-agent",
            Code::Cycle => "cycle",
            Code::NeedsAndContinues => "needs-and-continues",
            Code::ContinuesNotOneToOne => "continues-not-one-to-one",
            Code::InvalidGate => "invalid-gate",
            Code::InvalidDuration => "invalid-duration",
            Code::InvalidValue => "invalid-value",
            Code::TooManyTags => "too-many-tags",
            Code::UnknownReference => "unknown-reference",
            Code::ReferenceNotUpstream => "reference-not-upstream",
            Code::EmptyPrompt => "empty-prompt",
            Code::InvalidTrigger => "invalid-trigger",
            Code::InvalidCron => "invalid-cron",
            Code::UnknownPersona => "unknown-persona",
            Code::InvalidPersona => "invalid-persona",
            Code::UnknownPool => "unknown-pool",
            Code::MissingCommand => "missing-command",
            Code::MissingCheckCommand => "missing-check-command",
            Code::PlanningNeedsCodingAgent => "planning-needs-coding-agent",
            Code::NoEffect => "no-effect",
        }
    }
}

/// One problem, located in the normalised source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    pub line: usize,
    pub column: usize,
    /// How to fix it, when there is something useful to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Byte range in the normalised source, for renderers that underline the offending text.
    #[serde(skip)]
    pub span: Range<usize>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Collects diagnostics while the stages run; positions are computed from spans here, once.
pub(crate) struct Sink<'s> {
    source: &'s Source,
    found: Vec<Diagnostic>,
}

impl<'s> Sink<'s> {
    pub fn new(source: &'s Source) -> Self {
        Self {
            source,
            found: Vec::new(),
        }
    }

    pub fn error(
        &mut self,
        code: Code,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Added<'_> {
        self.push(Severity::Error, code, span, message.into())
    }

    pub fn warning(
        &mut self,
        code: Code,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Added<'_> {
        self.push(Severity::Warning, code, span, message.into())
    }

    fn push(
        &mut self,
        severity: Severity,
        code: Code,
        span: Range<usize>,
        message: String,
    ) -> Added<'_> {
        let at = self.source.position(span.start);
        self.found.push(Diagnostic {
            severity,
            code,
            message,
            line: at.line,
            column: at.column,
            help: None,
            span,
        });
        Added(self.found.last_mut().expect("just pushed"))
    }

    pub fn source(&self) -> &'s Source {
        self.source
    }

    pub fn finish(mut self) -> Vec<Diagnostic> {
        self.found
            .sort_by_key(|d| (d.line, d.column, d.severity == Severity::Warning));
        self.found
    }
}

/// A diagnostic just added, to attach a hint to.
pub(crate) struct Added<'d>(&'d mut Diagnostic);

impl Added<'_> {
    pub fn help(self, help: impl Into<String>) {
        self.0.help = Some(help.into());
    }

    pub fn help_opt(self, help: Option<String>) {
        self.0.help = help;
    }
}
