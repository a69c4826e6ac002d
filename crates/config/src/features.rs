//! `[features]`: the codes an operator dials from a softphone to change state.

use crate::model::Features;
use crate::reader::{self, Ctx, Table, Value};

pub(crate) const FEATURES_KEYS: &[&str] = &["ready", "not_ready", "logout"];

/// Longest feature code accepted.
const MAX_LEN: usize = 16;

/// A dialable code: 1 to 16 of `0-9`, `*`, `#`.
fn code(v: &Value<'_>) -> Result<String, String> {
    let s = reader::nonempty(v)?;
    if s.len() > MAX_LEN {
        return Err(format!("`{s}` is longer than {MAX_LEN} characters"));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
    {
        return Err(format!(
            "`{s}` is not dialable: use digits, `*` and `#` only"
        ));
    }
    Ok(s.to_owned())
}

pub(crate) fn features(ctx: &mut Ctx, t: &Table<'_, '_>) -> Features {
    let defaults = Features::default();
    let ready = t.opt(ctx, "ready", code).unwrap_or(defaults.ready);
    let not_ready = t.opt(ctx, "not_ready", code).unwrap_or(defaults.not_ready);
    let logout = t.opt(ctx, "logout", code).unwrap_or(defaults.logout);
    let named = [
        ("ready", &ready),
        ("not_ready", &not_ready),
        ("logout", &logout),
    ];
    for (i, (key, value)) in named.iter().enumerate() {
        if let Some((other, _)) = named[..i].iter().find(|(_, v)| v == value) {
            // Report at the key that was written (a default is on no line of the user's).
            let (at, clash) = if t.has(key) {
                (*key, format!("features.{other}"))
            } else {
                (*other, format!("features.{key} (its default)"))
            };
            t.error_on(
                ctx,
                at,
                format!("\"{value}\" is also the code of {clash}: codes must differ"),
            );
        }
    }
    Features {
        ready,
        not_ready,
        logout,
    }
}
