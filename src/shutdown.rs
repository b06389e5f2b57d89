//! A shutdown signal for long-running commands: Ctrl-C or SIGTERM in `main`, anything in tests.
//! Commands check it between batches and finish the batch in flight before they stop. A thin
//! wrapper over tokio-util's `CancellationToken`: a child stops with its parent, not the reverse.

use tokio_util::sync::CancellationToken;

/// Cheap to clone; every clone sees the same signal.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    /// A signal that fires only when `fire` is called (on this or a clone).
    pub fn new() -> Shutdown {
        Shutdown(CancellationToken::new())
    }

    /// A signal fired by the first Ctrl-C (SIGINT) or SIGTERM.
    pub fn on_signals() -> Shutdown {
        let shutdown = Shutdown::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term => {}
            }
            trigger.fire();
        });
        shutdown
    }

    /// A signal that fires with this one, and can also be fired on its own without firing this one.
    pub fn child(&self) -> Shutdown {
        Shutdown(self.0.child_token())
    }

    /// Fires the signal.
    pub fn fire(&self) {
        self.0.cancel();
    }

    /// True once the signal fired.
    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves when the signal fires.
    pub async fn wait(&self) {
        self.0.cancelled().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fire_wakes_waiters_and_clones_share_the_signal() {
        let shutdown = Shutdown::new();
        let clone = shutdown.clone();
        assert!(!clone.is_triggered());
        shutdown.fire();
        clone.wait().await;
        assert!(clone.is_triggered());
    }

    #[tokio::test]
    async fn a_child_stops_with_its_parent_but_not_the_reverse() {
        let parent = Shutdown::new();
        let child = parent.child();
        child.fire();
        assert!(child.is_triggered() && !parent.is_triggered());
        let (parent, child) = (Shutdown::new(), Shutdown::new());
        let grandchild = parent.child();
        parent.fire();
        grandchild.wait().await;
        assert!(!child.is_triggered());
    }
}
