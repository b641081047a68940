//! The per-render session the template functions reach: what the render may read
//! (the caller's [`World`]), what it read from the environment, and whether it used
//! the clock or unseeded randomness. Not the functions themselves (see `mod.rs`).
//!
//! Tera wants `'static` functions, but a render must read the environment through
//! the caller's [`World`] and note what it read. The render therefore installs a
//! per-thread [`Session`] for the duration of the Tera call (Tera renders
//! synchronously on the calling thread), and the functions reach it from there.

use std::cell::RefCell;
use std::collections::BTreeMap;

use tera::Result as TeraResult;

use crate::World;

/// Per-render state reachable from the template functions.
pub(crate) struct Session {
    world: *const (dyn World + 'static),
    /// Environment variables read, by name: blake3 of the value, `None` = unset.
    pub env: BTreeMap<String, Option<[u8; 32]>>,
    /// The clock or unseeded randomness was used.
    pub volatile: bool,
    pub(super) seed: Option<u64>,
    /// Calls of seeded random functions so far (each gets its own stream).
    pub(super) draws: u64,
    /// Frozen clock, in milliseconds since the epoch.
    pub(super) clock_ms: Option<i64>,
}

thread_local! {
    static SESSION: RefCell<Option<Session>> = const { RefCell::new(None) };
}

/// Installs a session for this thread; removes it (returning what it recorded) when
/// [`SessionGuard::finish`] is called or the guard is dropped (also on unwinding).
pub(crate) struct SessionGuard<'w> {
    _world: std::marker::PhantomData<&'w dyn World>,
}

impl<'w> SessionGuard<'w> {
    pub fn install(world: &'w dyn World, seed: Option<u64>, clock_ms: Option<i64>) -> Self {
        let ptr: *const (dyn World + 'w) = world;
        // SAFETY: only the lifetime bound of the trait object is erased. The pointer is
        // dereferenced only by `with_world` while this guard is alive (the guard borrows
        // the world for 'w), and the guard clears it from the thread-local on drop, so
        // it never outlives the borrow. Tera calls functions on the rendering thread.
        let ptr: *const (dyn World + 'static) = unsafe { std::mem::transmute(ptr) };
        SESSION.with(|slot| {
            *slot.borrow_mut() = Some(Session {
                world: ptr,
                env: BTreeMap::new(),
                volatile: false,
                seed,
                draws: 0,
                clock_ms,
            })
        });
        SessionGuard {
            _world: std::marker::PhantomData,
        }
    }

    pub fn finish(self) -> (BTreeMap<String, Option<[u8; 32]>>, bool) {
        let session = SESSION.with(|slot| slot.borrow_mut().take());
        std::mem::forget(self);
        session.map_or((BTreeMap::new(), false), |session| {
            (session.env, session.volatile)
        })
    }
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        SESSION.with(|slot| slot.borrow_mut().take());
    }
}

pub(super) fn with_session<T>(f: impl FnOnce(&mut Session) -> T) -> TeraResult<T> {
    SESSION.with(|slot| match slot.borrow_mut().as_mut() {
        Some(session) => Ok(f(session)),
        None => Err(tera::Error::msg(
            "clnrm template functions are only available while rendering",
        )),
    })
}

/// Reads an environment variable through the session's world and records it.
pub(super) fn read_env(name: &str) -> TeraResult<Option<String>> {
    let world = with_session(|session| session.world)?;
    // SAFETY: see `SessionGuard::install`: the session exists, so the guard (and the
    // borrow of the world) is alive.
    let value = unsafe { &*world }.env_var(name);
    with_session(|session| {
        session
            .env
            .insert(name.to_string(), value.as_ref().map(|v| hash(v.as_bytes())));
    })?;
    Ok(value)
}

pub(crate) fn hash(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}
