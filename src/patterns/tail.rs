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

use super::level::is_level_word;
use super::template::{self, Slot, TTok};
use super::tokenize::{LineBuf, Tok};

/// Fewest words (the label included) that must agree before a label for the text after it to
/// count as a value: `Reading from client:` has three. With less (`error:`, `Process <NUM>:`,
/// a header's `INFO [main] Scheduler:`), two lines sharing the prefix say little about whether
/// they are one event. Words are the message's own (see `is_message_word`).
pub(crate) const MIN_PREFIX: u32 = 3;

/// Hash of the token that stands for a collapsed tail.
const TAIL_HASH: u64 = 0x7461_696c_2a2a_2a2a;

/// A label: a word that ends with one `:`, made of letters, `_` and `-` (`client:`, `files:`,
/// `reason:`). Not a time, a key path (`a:b:`), a word with digits (`tty2:`) or a masked value
/// (`<IP>:`): an address before `: 11: Bye Bye` heads a code and a message that are often
/// separate events.
pub(crate) fn is_label(text: &[u8]) -> bool {
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

/// Whether `line`, as long as the open template `t`, has another word where `t` has its label.
/// Such a line must not join `t`: merged, the label would become `<*>`, `t` would no longer be
/// open, and every longer line it took would start a new pattern (a new alert, a new id).
pub(crate) fn changes_label(t: &[TTok], line: &[Tok]) -> bool {
    open_at(t).is_some_and(|p| line.get(p).is_none_or(|l| l.skel != t[p].skel))
}

/// Whether a line longer than the open template `t` joins it, as `Miner::open_tail` would
/// let it (its tail after `t`'s label collapsed to one token). `buf` is scratch space.
pub(crate) fn joins_open(t: &[TTok], lb: &LineBuf, buf: &mut Vec<Tok>) -> bool {
    let Some(p) = open_at(t) else {
        return false;
    };
    if lb.toks.len() <= t.len() || !labels(lb).any(|q| q == p) {
        return false;
    }
    collapse(&lb.toks, (p, lb.toks.len()), buf);
    template::compare(t, buf, 0, None).is_some()
}

/// A run of a line's tokens to collapse into one variable token: from after the label at the
/// first position up to (not including) the second, the line's end for a tail or its first field
/// for a middle (see `middle.rs`).
pub(crate) type Cut = (usize, usize);

/// `toks` with the words of `cut` collapsed into one variable token.
pub(crate) fn collapse(toks: &[Tok], (p, q): Cut, out: &mut Vec<Tok>) {
    out.clear();
    out.extend_from_slice(&toks[..=p]);
    out.push(tail_token(&toks[p + 1]));
    out.extend_from_slice(&toks[q..]);
}

/// Collapses the line's words of `cut` into one variable token (see [`collapse`]). The
/// exact-repeat hash is left as it was: it still names the line as read.
pub(crate) fn collapse_line(lb: &mut LineBuf, (p, q): Cut) {
    let value = tail_token(&lb.toks[p + 1]);
    lb.toks.splice(p + 1..q, [value]);
}

/// The variable token standing for a tail that starts with `first`. It points at the tail's first
/// word only (masked text is not contiguous); nothing reads its text, since an open template
/// shows `<*>` there.
pub(crate) fn tail_token(first: &Tok) -> Tok {
    Tok {
        off: first.off,
        len: first.len,
        hash: TAIL_HASH,
        var: true,
        digit: false,
        skel: TAIL_HASH,
        kv: false,
        enumerated: false,
        quoted: false,
        valued: false,
        blank: false,
        anchor: false,
        word: 0,
        word_at: (0, 0),
    }
}

/// The last label position `p` at which template `t` can open for the line: both agree on every
/// token through `p` (literals equal, variables where the template has them), the label and the
/// words of the message before it are at least [`MIN_PREFIX`] (see [`is_message_word`]; the
/// label counts whatever its word, `rpc error:`), both have free text after it (see
/// [`labels`]), and nowhere do they differ in an enumerated constant (see
/// `template::conflicts`): `status: OK` and `status: FAILED on disk` are two events, as they
/// were when both had one word after the label. `None` when there is no such label, or when `t`
/// is already open there (then the line would have joined it).
///
/// One pass over the tokens (`template::agreeing_prefixes`), so a crafted line of many labels
/// costs no more than a line of as many words.
pub(crate) fn shared_prefix(t: &[TTok], lb: &LineBuf) -> Option<usize> {
    let line = &lb.toks;
    let shorter = t.len().min(line.len());
    if template::conflicts(&t[..shorter], &line[..shorter]) {
        return None;
    }
    let already = open_at(t);
    // Labels after every `key=value` field of the line (see `labels`) and of the template.
    let after = |kv: Option<usize>| kv.map_or(0, |f| f + 1);
    let from = after(line.iter().rposition(|x| x.kv)).max(after(t.iter().rposition(|x| x.kv)));
    let (mut words, mut counted) = (0, 0);
    let mut found = None;
    let before_last = shorter.saturating_sub(1);
    template::agreeing_prefixes(&t[..before_last], line, |p| {
        words += t[counted..p].iter().filter(|x| is_message_word(x)).count() as u32;
        counted = p;
        let l = &line[p];
        if p >= from
            && Some(p) != already
            && t[p].slot == Slot::Const
            && t[p].skel == l.skel
            && !l.var
            && is_label(lb.text(l))
            && words + 1 >= MIN_PREFIX
        {
            found = Some(p);
        }
    });
    found
}

/// A word of the message, which counts as evidence before a label (see [`MIN_PREFIX`]):
/// letters, `_` and `-` (ending in at most one `:` or `,`), and no level word. Why: a header's
/// tokens hold for every message of a logger (`INFO [main] Scheduler: <message>`), so with them
/// counted a logger's messages were all one open pattern after its second message; a level
/// word, a bracketed thread or a host with digits are no words of the message.
pub(crate) fn is_message_word(t: &TTok) -> bool {
    let text = t.text.as_bytes();
    let word = text
        .strip_suffix(b":")
        .or_else(|| text.strip_suffix(b","))
        .unwrap_or(text);
    t.slot == Slot::Const
        && word.iter().any(u8::is_ascii_alphabetic)
        && word
            .iter()
            .all(|&c| c.is_ascii_alphabetic() || c == b'_' || c == b'-')
        && !is_level_word(word)
}
