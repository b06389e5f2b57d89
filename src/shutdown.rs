//! A shutdown signal for long-running commands: Ctrl-C in `main`, anything in tests. Commands
//! check it between batches and finish the batch in flight before they stop.

use tokio::sync::watch;

/// The receiving side: cheap to clone, checked by the command.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// The sending side.
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

impl Shutdown {
    /// A pair: the trigger fires the shutdown.
    pub fn new() -> (Trigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (Trigger(tx), Shutdown(rx))
    }

    /// A shutdown that never fires.
    pub fn never() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        // Keep the sender alive for the life of the process so `wait` stays pending.
        std::mem::forget(tx);
        Shutdown(rx)
    }

    /// A shutdown fired by the first Ctrl-C (SIGINT) or SIGTERM.
    pub fn on_signals() -> Shutdown {
        let (trigger, shutdown) = Shutdown::new();
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

    /// True once the shutdown fired.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when the shutdown fires.
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|fired| *fired).await;
    }
}

impl Trigger {
    /// Fires the shutdown.
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_wakes_waiters() {
        let (trigger, mut shutdown) = Shutdown::new();
        assert!(!shutdown.is_triggered());
        trigger.fire();
        shutdown.wait().await;
        assert!(shutdown.is_triggered());
    }
}
