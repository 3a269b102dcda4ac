//! Open tails: free text after a label, as one value of any number of words.
//!
//! Many events end with a message of their own: `Reading from client: Connection reset by peer`,
//! `Failed to load environment files: Permission denied`, `checkpoint starting: immediate force
//! wait`. The words after the label are one value (an error string, a reason, a list of flags),
//! but their count varies, so a positional template sees lines of different lengths whose last
//! words all differ, and splits one event into as many patterns as there are messages.
//!
//! A shape whose last token is `<*>` right after a label (a word ending in `:`) is *open*: a line
//! that agrees with it up to the label joins it whatever the number of words after it, its tail
//! collapsed to one variable token. The miner opens a shape only on evidence (see
//! `Miner::open_tail`): a second line sharing the whole prefix through the label and differing
//! after it. Being derived from the template text alone, openness needs nothing stored: a
//! restored template is open exactly when the saved one was.

use super::template::{self, Slot, TTok};
use super::tokenize::{LineBuf, Tok};

/// Fewest constant words (the label included) that must agree before a label for the text after
/// it to count as a value: `Reading from client:` has three. With less (`error:`, `Process
/// <NUM>:`), two lines sharing the prefix say little about whether they are one event.
pub(crate) const MIN_PREFIX: u32 = 3;

/// Hash of the token that stands for a collapsed tail.
const TAIL_HASH: u64 = 0x7461_696c_2a2a_2a2a;

/// A label: a word that ends with one `:`, made of letters, `_` and `-` (`client:`, `files:`,
/// `reason:`). Not a time, a key path (`a:b:`), a word with digits (`tty2:`) or a masked value
/// (`<IP>:`): an address before `: 11: Bye Bye` heads a code and a message that are often
/// separate events.
fn is_label(text: &[u8]) -> bool {
    let Some((&b':', word)) = text.split_last() else {
        return false;
    };
    word.len() >= 2
        && word
            .iter()
            .all(|&c| c.is_ascii_alphabetic() || c == b'_' || c == b'-')
}

/// Positions of the line's literal labels, last first: a later label leaves a longer prefix that
/// must agree, which is the stronger evidence.
/// Only labels followed by free text count: no word after them is a `key=value` field, which is
/// structure (a record's next field), not text.
pub(crate) fn labels(lb: &LineBuf) -> impl Iterator<Item = usize> + '_ {
    let toks = &lb.toks;
    let last_field = toks.iter().rposition(|t| t.kv);
    toks.iter()
        .enumerate()
        .rev()
        .take_while(move |&(p, _)| last_field.is_none_or(|f| p > f))
        .filter(move |(_, t)| !t.var && is_label(lb.text(t)))
        .map(|(p, _)| p)
}

/// The label position after which the template is open (its last token is `<*>` right after a
/// label), if it is.
pub(crate) fn open_at(t: &[TTok]) -> Option<usize> {
    let [.., label, last] = t else {
        return None;
    };
    (last.slot == Slot::Wild && label.slot == Slot::Const && is_label(label.text.as_bytes()))
        .then(|| t.len() - 2)
}

/// `toks` up to and including position `p`, then one variable token for everything after it.
pub(crate) fn collapse(toks: &[Tok], p: usize, out: &mut Vec<Tok>) {
    out.clear();
    out.extend_from_slice(&toks[..=p]);
    out.push(tail_token(&toks[p + 1]));
}

/// Collapses the line's tokens after position `p` into one variable token (see [`collapse`]).
/// The exact-repeat hash is left as it was: it still names the line as read.
pub(crate) fn collapse_line(lb: &mut LineBuf, p: usize) {
    let tail = tail_token(&lb.toks[p + 1]);
    lb.toks.truncate(p + 1);
    lb.toks.push(tail);
}

/// The variable token standing for a tail that starts with `first`. It points at the tail's first
/// word only (masked text is not contiguous); nothing reads its text, since an open template
/// shows `<*>` there.
fn tail_token(first: &Tok) -> Tok {
    Tok {
        off: first.off,
        len: first.len,
        hash: TAIL_HASH,
        var: true,
        digit: false,
        skel: TAIL_HASH,
        kv: false,
        enumerated: false,
        blank: false,
        anchor: false,
        word: 0,
        word_at: (0, 0),
    }
}

/// The last label position `p` at which template `t` can open for the line: both agree on every
/// token through `p` (literals equal, variables where the template has them), at least
/// [`MIN_PREFIX`] of those are constant words, and both have free text after it (see
/// [`labels`]). `None` when there is
/// no such label, or when `t` is already open there (then the line would have joined it).
pub(crate) fn shared_prefix(t: &[TTok], lb: &LineBuf) -> Option<usize> {
    let line = &lb.toks;
    let shorter = t.len().min(line.len());
    let already = open_at(t);
    labels(lb).filter(|&p| p + 1 < shorter).find(|&p| {
        Some(p) != already
            && !t[p + 1..].iter().any(|t| t.kv)
            && t[p].slot == Slot::Const
            && t[p].skel == line[p].skel
            && template::consts(&t[..=p]) >= MIN_PREFIX
            && template::compare(&t[..=p], &line[..=p], 0).is_some()
    })
}
