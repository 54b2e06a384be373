//! Parameter names, as templates and declarations refer to them.

/// True for a valid parameter name: `[A-Za-z_][A-Za-z0-9_-]*`, at most 64 bytes.
#[must_use]
pub fn is_valid_param_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
