//! Open middles: free text between a label and `key=value` fields, as one value of any number of
//! words.
//!
//! An open tail (see `tail.rs`) is a message that ends a line. Many events put theirs between a
//! label and the fields that follow it: `Disconnected: Logged out in=209 out=89573`,
//! `Disconnected: Connection closed (IDLE running for 0.001 + waiting input for 1800 secs) in=12
//! out=3482`, `Task failed: disk full retries=3 job=backup`. The fields after the text are the
//! event's structure, so a template must keep them aligned by position, while the text before
//! them varies in its number of words.
//!
//! A shape whose label is followed by one `<*>` and then a `key=value` field is *open in the
//! middle*: a line that agrees with it up to the label and, from its first field after the label
//! on, with the shape's fields joins it whatever the number of words between, that text collapsed
//! to one variable token. The miner opens a shape only on evidence (see `Miner::open_middle`): a
//! second line that shares the prefix through the label and every field after the text, and
//! differs in the text. Derived from the template text alone (the label, the `<*>` and the field's
//! `=`), openness needs nothing stored: a restored template is open exactly when the saved one was.

use super::tail::{self, Cut, MIN_PREFIX};
use super::template::{self, Slot, TTok};
use super::tokenize::{LineBuf, Tok};

/// Where template `t` is open in the middle: the position of the label before its first field
/// that follows a `<*>` right after a label, with the evidence an opening needs (see
/// [`evidence`]). One position per template, so that a live and a restored miner read the same.
/// Why the evidence here too: two one-word texts (`main: 7x code=1`, `main: 9y code=2`) make the
/// same `<*>` at one length as a longer line does, and a label and one field are too little for
/// a text of any length (`main: segfault in worker thread code=3` is another event).
pub(crate) fn open_at(t: &[TTok]) -> Option<usize> {
    let first_field = t.iter().position(|x| x.kv)?;
    let p = first_field.checked_sub(2)?;
    (t[p + 1].slot == Slot::Wild
        && t[p].slot == Slot::Const
        && tail::is_label(t[p].text.as_bytes())
        && evidence(t, p, first_field, |_| true) >= MIN_PREFIX)
        .then_some(p)
}

/// The evidence that the text after the label at `p` of shape `t`, up to its field at `q`, is a
/// value: the words of the message before the label (see `tail::is_message_word`), the label and
/// the fields after the text. Only words `keeps` keeps count (see [`changes_label`]).
fn evidence(t: &[TTok], p: usize, q: usize, keeps: impl Fn(usize) -> bool) -> u32 {
    let words = t[..p]
        .iter()
        .enumerate()
        .filter(|&(i, x)| tail::is_message_word(x) && keeps(i))
        .count();
    let fields = t[q..].iter().filter(|x| x.kv).count();
    (words + 1 + fields) as u32
}

/// Whether a shape's token is a literal label. Its middle may neither start nor end with one (see
/// [`labels`]): the text is then words of the event, not a value.
fn is_literal_label(t: &TTok) -> bool {
    t.slot == Slot::Const && tail::is_label(t.text.as_bytes())
}

/// Most labels of one line tried as the start of a middle to open (the last ones before its
/// first field; see [`opening_labels`]). A crafted line of many labels then costs the scan of
/// candidate shapes a few labels, not one per label. Joining a shape already open tries every
/// label (see [`join_labels`]): a text holding labels of its own (`Connection closed: idle, state:
/// auth, last: NOOP`) joins the middle that another line opened before its first label.
const MAX_LABELS: usize = 3;

/// The labels that can start the line's middle, latest first, each with where the middle ends
/// (the line's first field): those of [`join_labels`], but none when the field follows a label
/// right away (`imap-login: Login: user=…`): that label heads the fields, and the words before
/// it are the event (`Login:`), not a text of any length. Nor a label followed by another
/// (`imap-login: Disconnected: Inactivity user=…`): the later label names the event, so only
/// the text after it is a value.
fn labels(lb: &LineBuf) -> impl Iterator<Item = Cut> + '_ {
    let is_label = move |t: &Tok| !t.var && tail::is_label(lb.text(t));
    join_labels(lb).filter(move |&(p, q)| !is_label(&lb.toks[q - 1]) && !is_label(&lb.toks[p + 1]))
}

/// The labels at which the line may open a middle: the latest [`MAX_LABELS`] of [`labels`].
pub(crate) fn opening_labels(lb: &LineBuf) -> impl Iterator<Item = Cut> + '_ {
    labels(lb).take(MAX_LABELS)
}

/// The labels at which a line may join a shape already open in the middle (see
/// `Miner::join_middle`), latest first, each with where the middle ends (the line's first
/// field): every literal label before that field with some text after it. Unlike [`labels`], a
/// label followed by another label, or by text that ends in one heading the fields, is tried
/// too. Why: a shape open there took such a line at its own length before its middle opened
/// (`Disconnected: reason: bar in=1` joined `Disconnected: <*> bar in=<*>`), as it takes a line
/// whose one word there is a label; once the exact-repeat cache forgets the line (the next
/// change, a restart) it must take it again, or a replay starts a pattern.
pub(crate) fn join_labels(lb: &LineBuf) -> impl Iterator<Item = Cut> + '_ {
    let toks = &lb.toks;
    let first_field = toks.iter().position(|t| t.kv).unwrap_or(0);
    toks[..first_field]
        .iter()
        .enumerate()
        .rev()
        .filter(move |&(_, t)| !t.var && tail::is_label(lb.text(t)))
        .map(move |(p, _)| (p, first_field))
        .filter(|&(p, q)| q > p + 1)
}

/// Whether a line longer than the template `t`, open in the middle, joins it as
/// `Miner::join_middle` would let it. `buf` is scratch space.
pub(crate) fn joins_open(t: &[TTok], lb: &LineBuf, buf: &mut Vec<Tok>) -> bool {
    let Some(p) = open_at(t) else {
        return false;
    };
    if lb.toks.len() <= t.len() {
        return false;
    }
    let Some(cut) = join_labels(lb).find(|&(lp, _)| lp == p) else {
        return false;
    };
    tail::collapse(&lb.toks, cut, buf);
    template::compare(t, buf, 0, None).is_some()
}

/// Whether `line`, as long as `t` and `t` open in the middle, has another word where `t` has its
/// label, or other words before it than leave the evidence (see [`evidence`]): merged, `t`
/// would no longer be open (see `tail::changes_label`), and every longer line it took would
/// start a new pattern.
pub(crate) fn changes_label(t: &[TTok], line: &[Tok]) -> bool {
    open_at(t).is_some_and(|p| {
        let same = |i: usize| line.get(i).is_some_and(|l| l.skel == t[i].skel);
        !same(p) || evidence(t, p, p + 2, same) < MIN_PREFIX
    })
}

/// Where shape `t` can open in the middle for the line: the last label `p` through which both
/// agree (literals equal, variables where the template has them), after which both have some text
/// and then the same fields to their ends, with the words of the message before it, the label and
/// the fields after it at least [`MIN_PREFIX`]. Nowhere may they differ in an enumerated constant
/// (`status: OK code=200` and `status: FAILED on disk code=500` are two events). Returns the label
/// and where the middle ends in the shape and in the line; `None` when there is no such label, or
/// when `t` is already open there (then the line would have joined it).
pub(crate) fn shared_label(t: &[TTok], lb: &LineBuf) -> Option<(usize, usize, usize)> {
    let line = &lb.toks;
    let already = open_at(t);
    opening_labels(lb).find_map(|(p, lq)| {
        if p + 1 >= t.len() || Some(p) == already {
            return None;
        }
        let tq = p + 1 + t[p + 1..].iter().position(|x| x.kv)?;
        let same_fields = t.len() - tq == line.len() - lq;
        if tq == p + 1
            || !same_fields
            || is_literal_label(&t[tq - 1])
            || is_literal_label(&t[p + 1])
            || t[p].slot != Slot::Const
            || t[p].skel != line[p].skel
        {
            return None;
        }
        let common = tq.min(lq);
        if template::conflicts(&t[..common], &line[..common]) {
            return None;
        }
        let mut agrees = false;
        template::agreeing_prefixes(&t[..=p], line, |at| agrees |= at == p);
        if !agrees || template::compare(&t[tq..], &line[lq..], 0, None).is_none() {
            return None;
        }
        (evidence(t, p, tq, |_| true) >= MIN_PREFIX).then_some((p, tq, lq))
    })
}
