//! `${{ }}` references in shell scripts (an `exec` agent's script, a `command` directive):
//! each becomes an expansion of an environment variable, written for the quoting context it
//! stands in, and its value goes into that variable (spec §4.2: values are data, never code).
//!
//! A value never becomes script text, so no value can run, whatever it holds: expansion
//! results are not parsed again by the shell. The scanner below only decides how the
//! expansion is quoted so that the value arrives verbatim, one word: `"$MURMUR_REF_1"` in
//! plain shell text, `${MURMUR_REF_1}` inside double quotes, `'"$MURMUR_REF_1"'` inside single
//! quotes (the quote is closed and reopened). Were it to misjudge a context in some exotic
//! script, the value would still only be expanded, never run.
//!
//! Heredocs: an unquoted one (`<<EOF`) expands variables, so its references become
//! `${MURMUR_REF_1}`. A quoted one (`<<'EOF'`) expands nothing; when its body holds a reference
//! it is rewritten into an unquoted heredoc whose other text has `\`, `$` and `` ` `` escaped,
//! which reads exactly the same, and the reference becomes `${MURMUR_REF_1}`. A heredoc without
//! references is left as written.
//!
//! Two things are refused: a reference inside `$(( ))`, where the shell evaluates text as code
//! (bash even runs `$(…)` inside an array subscript there), and a value with a NUL byte, which
//! no environment variable can carry. A backslash written right before a reference (`\${{ x }}`)
//! is dropped: a value is never shell syntax to escape.
//!
//! This is the parser's because it is pure text work on the flight's own syntax; the engine
//! calls it when an attempt starts, with the values of that moment.

use std::collections::HashMap;
use std::ops::Range;

use crate::reference::{self, Reference};

/// Every variable is this prefix and a number, counted from 1 in order of appearance.
pub const PREFIX: &str = "MURMUR_REF_";

/// A script whose references are variables, and the variables' values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bound {
    pub script: String,
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "`{0}` stands inside `$(( ))`, where the shell evaluates text as code, so no value may go there: compute with `expr` instead (for example `expr {0} + 1`)"
    )]
    Arithmetic(String),
    #[error("the value of `{0}` holds a NUL byte, which no shell variable can carry")]
    NulByte(String),
}

/// Binds every reference that `resolve` knows in `script`; the others stay as written. With
/// `item`, Murmur's `{}` placeholder is the fan-out item too (resolved as `${{ item }}`).
pub fn bind(
    script: &str,
    item: bool,
    resolve: impl FnMut(&Reference<'_>) -> Option<String>,
) -> Result<Bound, Error> {
    let (holes, env) = holes(script, item, resolve)?;
    if holes.is_empty() {
        return Ok(Bound {
            script: script.to_owned(),
            env,
        });
    }
    let out = Scanner::new(script, &holes, &env).run()?;
    // Only ASCII was inserted or removed, and only next to ASCII, so this cannot fail.
    let script = String::from_utf8(out)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned());
    Ok(Bound { script, env })
}

type Variables = Vec<(String, String)>;

/// One reference to replace: where it is written and which variable holds its value.
struct Hole {
    span: Range<usize>,
    var: usize,
}

fn holes(
    script: &str,
    item: bool,
    mut resolve: impl FnMut(&Reference<'_>) -> Option<String>,
) -> Result<(Vec<Hole>, Variables), Error> {
    let mut env: Variables = Vec::new();
    let mut vars: HashMap<String, usize> = HashMap::new();
    let mut holes = Vec::new();
    let mut add = |span: Range<usize>, key: &str, value: String| {
        if value.contains('\0') {
            return Err(Error::NulByte(script[span].to_owned()));
        }
        let var = *vars.entry(key.to_owned()).or_insert_with(|| {
            env.push((format!("{PREFIX}{}", env.len() + 1), value));
            env.len() - 1
        });
        holes.push(Hole { span, var });
        Ok(())
    };
    let occurrences: Vec<_> = reference::occurrences(script).collect();
    for occurrence in &occurrences {
        let Ok(reference) = reference::parse(occurrence.expression) else {
            continue;
        };
        if reference == Reference::Item && !item {
            continue;
        }
        if let Some(value) = resolve(&reference) {
            let key = occurrence.expression.trim();
            add(occurrence.span.clone(), key, value)?;
        }
    }
    if item {
        let inside = |at: usize| occurrences.iter().any(|o| o.span.contains(&at));
        for (start, _) in script.match_indices("{}") {
            if inside(start) || inside(start + 1) {
                continue;
            }
            if let Some(value) = resolve(&Reference::Item) {
                add(start..start + 2, "item", value)?;
            }
        }
        holes.sort_by_key(|hole| hole.span.start);
    }
    Ok((holes, env))
}

/// Where the scanner is. `Code` is plain shell text: the script itself, `$( )` and backticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Code(Nest),
    Double,
    Single,
    /// bash's `$'…'`.
    AnsiC,
    /// `${ … }`, inside double quotes or not.
    Param {
        quoted: bool,
    },
    Arith {
        depth: u32,
    },
    Comment,
    /// The body of a heredoc: an index into `Scanner::bodies`.
    Heredoc(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nest {
    Script,
    /// `$(`, with the parentheses opened inside it.
    Command {
        depth: u32,
    },
    Backtick,
}

/// A heredoc operator read on the current line, whose body starts at the next newline.
struct Pending {
    delimiter: Vec<u8>,
    strip_tabs: bool,
    quoted: bool,
    /// The delimiter word as written, in the output.
    word: Range<usize>,
    /// The stack depth it was written at: its body starts at a newline of that depth.
    depth: usize,
}

struct Body {
    quoted: bool,
    /// A quoted heredoc turned into an unquoted one, because its body holds a reference.
    rewrite: bool,
    /// Where the body ends (the terminator line starts) and where the text after it resumes.
    end: usize,
    resume: usize,
    /// The delimiter the rewritten heredoc uses, when the written one is no plain word.
    renamed: Option<Vec<u8>>,
}

const BREAKS: &[u8] = b" \t\n;&|()<>";

struct Scanner<'s> {
    src: &'s [u8],
    holes: &'s [Hole],
    env: &'s [(String, String)],
    next_hole: usize,
    out: Vec<u8>,
    i: usize,
    stack: Vec<Context>,
    pending: Vec<Pending>,
    bodies: Vec<Body>,
    word_start: bool,
}

impl<'s> Scanner<'s> {
    fn new(script: &'s str, holes: &'s [Hole], env: &'s [(String, String)]) -> Self {
        Self {
            src: script.as_bytes(),
            holes,
            env,
            next_hole: 0,
            out: Vec::with_capacity(script.len() + 16 * holes.len()),
            i: 0,
            stack: vec![Context::Code(Nest::Script)],
            pending: Vec::new(),
            bodies: Vec::new(),
            word_start: true,
        }
    }

    fn run(mut self) -> Result<Vec<u8>, Error> {
        while self.i < self.src.len() {
            if self.heredoc_ends_here() {
                continue;
            }
            if let Some(hole) = self.hole_at(self.i) {
                self.emit(hole)?;
                continue;
            }
            self.step();
        }
        Ok(self.out)
    }

    fn top(&self) -> Context {
        self.stack
            .last()
            .copied()
            .unwrap_or(Context::Code(Nest::Script))
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.src.get(at).copied()
    }

    fn hole_at(&mut self, at: usize) -> Option<&'s Hole> {
        let holes = self.holes;
        while holes
            .get(self.next_hole)
            .is_some_and(|hole| hole.span.start < self.i)
        {
            self.next_hole += 1;
        }
        holes[self.next_hole..]
            .iter()
            .take(2)
            .find(|hole| hole.span.start == at)
    }

    /// Copies up to `count` bytes, never into a reference: every one is visited by `run`.
    fn copy(&mut self, count: usize) {
        let mut end = (self.i + count).min(self.src.len());
        if let Some(hole) = self.holes[self.next_hole..]
            .iter()
            .find(|hole| hole.span.start > self.i)
        {
            end = end.min(hole.span.start);
        }
        self.out.extend_from_slice(&self.src[self.i..end]);
        self.i = end;
    }

    fn push(&mut self, context: Context, count: usize) {
        self.stack.push(context);
        self.copy(count);
    }

    fn pop(&mut self, count: usize) {
        if self.stack.len() > 1 {
            self.stack.pop();
        }
        self.copy(count);
    }

    /// The variable's expansion, written for the context it stands in.
    fn emit(&mut self, hole: &Hole) -> Result<(), Error> {
        let name = &self.env[hole.var].0;
        let text = match self.top() {
            Context::Code(_) | Context::Param { quoted: false } | Context::Comment => {
                format!("\"${name}\"")
            }
            Context::Double | Context::Param { quoted: true } | Context::Heredoc(_) => {
                format!("${{{name}}}")
            }
            Context::Single => format!("'\"${name}\"'"),
            Context::AnsiC => format!("'\"${name}\"$'"),
            Context::Arith { .. } => {
                let written = String::from_utf8_lossy(&self.src[hole.span.clone()]);
                return Err(Error::Arithmetic(written.into_owned()));
            }
        };
        self.out.extend_from_slice(text.as_bytes());
        self.i = hole.span.end;
        self.word_start = false;
        Ok(())
    }

    fn step(&mut self) {
        match self.top() {
            Context::Code(nest) => self.code(nest),
            Context::Double => self.double(true),
            Context::Single if self.src[self.i] == b'\'' => self.pop(1),
            Context::AnsiC => match self.src[self.i] {
                b'\\' => self.copy(2),
                b'\'' => self.pop(1),
                _ => self.copy(1),
            },
            Context::Param { quoted } => self.param(quoted),
            Context::Arith { depth } => self.arith(depth),
            Context::Comment if self.src[self.i] == b'\n' => self.pop(0),
            Context::Heredoc(body) if self.bodies[body].quoted => {
                let special = matches!(self.src[self.i], b'\\' | b'$' | b'`');
                if self.bodies[body].rewrite && special {
                    self.out.push(b'\\');
                }
                self.copy(1);
            }
            Context::Heredoc(_) => self.double(false),
            Context::Single | Context::Comment => self.copy(1),
        }
    }

    fn code(&mut self, nest: Nest) {
        let start = self.i;
        let byte = self.src[start];
        let next = self.byte(start + 1);
        match (byte, nest) {
            (b'\\', _) => self.escape(true),
            (b'\'', _) => self.push(Context::Single, 1),
            (b'"', _) => self.push(Context::Double, 1),
            (b'$', _) if next == Some(b'\'') => self.push(Context::AnsiC, 2),
            (b'$' | b'`', _) => self.expansion(),
            (b'#', _) if self.word_start => self.push(Context::Comment, 1),
            (b'(', Nest::Command { depth }) => {
                self.set_top(Context::Code(Nest::Command { depth: depth + 1 }));
                self.copy(1);
            }
            (b')', Nest::Command { depth: 0 }) => {
                self.pop(1);
                self.word_start = false;
                return;
            }
            (b')', Nest::Command { depth }) => {
                self.set_top(Context::Code(Nest::Command { depth: depth - 1 }));
                self.copy(1);
            }
            (b'<', _) if next == Some(b'<') => self.heredoc_operator(),
            (b'\n', _) => {
                self.copy(1);
                self.start_pending_body();
            }
            _ => self.copy(1),
        }
        self.word_start = self.i == start + 1 && BREAKS.contains(&byte);
    }

    /// Double quotes, and (`in_quotes` false) an unquoted heredoc's body, where `"` is text.
    fn double(&mut self, in_quotes: bool) {
        match self.src[self.i] {
            b'"' if in_quotes => self.pop(1),
            b'\\' => self.escape(false),
            b'$' | b'`' => self.expansion(),
            _ => self.copy(1),
        }
    }

    fn param(&mut self, quoted: bool) {
        match self.src[self.i] {
            b'}' => self.pop(1),
            b'\\' => self.escape(!quoted),
            b'"' => self.push(Context::Double, 1),
            b'\'' if !quoted => self.push(Context::Single, 1),
            b'$' if !quoted && self.byte(self.i + 1) == Some(b'\'') => self.push(Context::AnsiC, 2),
            b'$' | b'`' => self.expansion(),
            _ => self.copy(1),
        }
    }

    fn arith(&mut self, depth: u32) {
        match self.src[self.i] {
            b'(' => {
                self.set_top(Context::Arith { depth: depth + 1 });
                self.copy(1);
            }
            b')' if depth == 0 && self.byte(self.i + 1) == Some(b')') => self.pop(2),
            b')' => {
                self.set_top(Context::Arith {
                    depth: depth.saturating_sub(1),
                });
                self.copy(1);
            }
            b'$' | b'`' => self.expansion(),
            b'\\' => self.copy(2),
            _ => self.copy(1),
        }
    }

    fn set_top(&mut self, context: Context) {
        if let Some(top) = self.stack.last_mut() {
            *top = context;
        }
    }

    /// A backslash: it escapes the next byte, unless a reference follows, which it cannot
    /// escape (it is dropped). In double quotes only `$ \` " \ newline` are escaped.
    fn escape(&mut self, in_code: bool) {
        let next = self.byte(self.i + 1);
        if let Some(hole) = self.hole_at(self.i + 1)
            && (in_code || self.src[hole.span.start] == b'$')
        {
            self.i += 1;
            return;
        }
        match next {
            _ if in_code => self.copy(2),
            Some(b'$' | b'`' | b'"' | b'\\' | b'\n') => self.copy(2),
            _ => self.copy(1),
        }
    }

    /// `$(`, `$((`, `${`, a backtick, or a `$` that starts none of them.
    fn expansion(&mut self) {
        if self.src[self.i] == b'`' {
            if self.top() == Context::Code(Nest::Backtick) {
                self.pop(1);
            } else {
                self.push(Context::Code(Nest::Backtick), 1);
            }
            return;
        }
        if self.hole_at(self.i + 1).is_some() {
            return self.copy(1);
        }
        let quoted = matches!(
            self.top(),
            Context::Double | Context::Heredoc(_) | Context::Param { quoted: true }
        );
        match (self.byte(self.i + 1), self.byte(self.i + 2)) {
            (Some(b'('), Some(b'(')) => self.push(Context::Arith { depth: 0 }, 3),
            (Some(b'('), _) => self.push(Context::Code(Nest::Command { depth: 0 }), 2),
            (Some(b'{'), _) => self.push(Context::Param { quoted }, 2),
            _ => self.copy(1),
        }
    }
}

mod heredoc;
#[cfg(test)]
mod tests;
