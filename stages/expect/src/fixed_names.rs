//! The `fixed_names!` macro: one table of variant names gives an enum its `as_str` and its
//! `Display`, so the two cannot disagree. Not parsing: each enum reads text where the rules
//! for that text live (span kinds and statuses accept different spellings).

/// Writes `as_str` (each variant's fixed name) and a `Display` that prints it.
macro_rules! fixed_names {
    ($(#[$doc:meta])* $ty:ident { $($variant:ident => $name:literal,)+ }) => {
        impl $ty {
            $(#[$doc])*
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use fixed_names;
