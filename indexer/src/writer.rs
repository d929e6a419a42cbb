//! The index writer on a thread of its own: built documents in, committed deliveries out.
//!
//! A tantivy commit blocks its caller while the indexing threads finish and write their
//! segments and the commit is made durable; on the consuming task that stalled decoding and
//! building the next documents, which cost as much again. Here the consuming task only
//! queues work, and keeps reading the bus while a commit runs; it acks what a commit holds
//! once this thread says the commit is done.
//!
//! A commit that fails because the disk is full is not the end: the thread keeps every
//! delivery since the last commit that succeeded, answers the failure (the consuming task
//! then stops reading the bus and asks again later), and at the next commit rolls tantivy's
//! writer back, adds them all again and commits. Nothing is acked before that succeeds.

use crate::ingest::COUNTERS;
use crate::store::{is_disk_full, IndexSink, StoreResult, COMMIT_DURATION};
use std::collections::HashMap;
use tantivy::TantivyDocument;
use tokio::sync::mpsc;
use windsock_core::bus::{Delivery, Topic};

/// Commands queued ahead of the writer (each `Add` holds up to a batch of documents): enough
/// to keep building through a commit, bounded so memory is.
const QUEUE: usize = 16;

/// The newest delivery per partition a commit contains: acking it acks those before it.
pub type Committed = HashMap<(Topic, i32), Delivery>;

/// An event's id and document.
pub type Document = (String, TantivyDocument);

/// A delivery ready for the writer: with its event's id and document, or `None` when it
/// held no event (it was dead-lettered), recorded as read and acked with the commit.
pub struct Built {
    pub delivery: Delivery,
    pub event: Option<Document>,
}

/// What a failed commit answers: why, and how many deliveries wait, unacked, for a retry
/// (after an error other than a full disk the thread has stopped).
#[derive(Debug)]
pub struct Failed {
    pub error: tantivy::TantivyError,
    pub held: usize,
}

impl Failed {
    pub fn disk_full(&self) -> bool {
        is_disk_full(&self.error)
    }
}

/// One answer per commit asked for.
pub type Answer = Result<Committed, Failed>;

/// An operation since the last commit that succeeded, kept to be applied again after a
/// rollback.
enum Held {
    Event(Delivery),
    /// A delivery that held no event (dead-lettered): only its offset is recorded.
    Pass(Delivery),
    DeleteBefore(chrono::DateTime<chrono::Utc>),
}

enum Command {
    Add(Vec<Built>),
    DeleteBefore(chrono::DateTime<chrono::Utc>),
    Commit,
}

/// The consuming task's side of the writer thread.
pub struct Writer {
    commands: Option<mpsc::Sender<Command>>,
    /// One answer per `commit`, in order: what it made durable (to ack), or why it failed.
    committed: mpsc::UnboundedReceiver<Answer>,
    thread: Option<std::thread::JoinHandle<StoreResult<()>>>,
}

impl Writer {
    /// Starts the thread; its commits record they are offsets of `bus`.
    pub fn spawn(sink: IndexSink, bus: &'static str) -> std::io::Result<Self> {
        let (commands, inbox) = mpsc::channel(QUEUE);
        let (answers, committed) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("indexer-writer".into())
            .spawn(move || write(sink, bus, inbox, answers))?;
        Ok(Self {
            commands: Some(commands),
            committed,
            thread: Some(thread),
        })
    }

    pub async fn add(&mut self, batch: Vec<Built>) -> StoreResult<()> {
        self.send(Command::Add(batch)).await
    }

    /// Deletes every event before `cutoff` (applied at the next commit).
    pub async fn delete_before(
        &mut self,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        self.send(Command::DeleteBefore(cutoff)).await
    }

    /// Asks for a commit of everything queued so far; its answer comes from [`Writer::next_commit`].
    pub async fn commit(&mut self) -> StoreResult<()> {
        self.send(Command::Commit).await
    }

    /// The next commit's answer (waits for it); `None` once the thread has stopped.
    pub async fn next_commit(&mut self) -> Option<Answer> {
        self.committed.recv().await
    }

    /// Stops taking work: the thread finishes what is queued, answers the commits, waits for
    /// merges and ends. Drain [`Writer::next_commit`] to `None`, then [`Writer::join`].
    pub fn close(&mut self) {
        self.commands = None;
    }

    /// Waits for the thread to end (after [`Writer::close`]).
    pub fn join(&mut self) -> StoreResult<()> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            Some(Err(panic)) => Err(panicked(panic.as_ref())),
            None => Ok(()),
        }
    }

    async fn send(&mut self, command: Command) -> StoreResult<()> {
        let sent = match &self.commands {
            Some(commands) => commands.send(command).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The thread stopped on an error it has answered with: report that one.
        while let Some(answer) = self.committed.recv().await {
            answer.map_err(|failed| failed.error)?;
        }
        Err(stopped())
    }
}

fn stopped() -> tantivy::TantivyError {
    tantivy::TantivyError::SystemError("the index writer thread stopped".into())
}

/// A panic of the writer thread, with its message (a panic carries no error to keep as a
/// source; its message is what says why).
fn panicked(panic: &(dyn std::any::Any + Send)) -> tantivy::TantivyError {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    tantivy::TantivyError::ErrorInThread(format!("the index writer thread panicked: {message}"))
}

/// The thread: applies commands in order; answers each commit. A full disk is answered and
/// waited out (see the module doc); any other error is answered and stops the thread (the
/// consuming task then fails, and a restart resumes from the last commit).
fn write(
    mut sink: IndexSink,
    bus: &'static str,
    mut inbox: mpsc::Receiver<Command>,
    answers: mpsc::UnboundedSender<Answer>,
) -> StoreResult<()> {
    let mut held: Vec<Held> = Vec::new();
    // Set once an add or a commit failed on a full disk: tantivy's writer may be unusable
    // until rolled back, so operations are only held until the next commit redoes them all.
    let mut broken = false;
    let fatal = |error: tantivy::TantivyError, held: &[Held]| {
        // The consuming task may be gone (it failed); nothing to tell then.
        let _ = answers.send(Err(Failed {
            error,
            held: held.len(),
        }));
    };
    while let Some(command) = inbox.blocking_recv() {
        match command {
            Command::Add(batch) => {
                for built in batch {
                    let added = match built.event {
                        Some((id, document)) => {
                            let added = match broken {
                                true => Ok(()),
                                false => sink.add(&id, document, Some(&built.delivery)),
                            };
                            held.push(Held::Event(built.delivery));
                            added
                        }
                        None => {
                            if !broken {
                                sink.pass(&built.delivery);
                            }
                            held.push(Held::Pass(built.delivery));
                            Ok(())
                        }
                    };
                    if let Err(err) = added {
                        if !is_disk_full(&err) {
                            COUNTERS.error("index");
                            fatal(err, &held);
                            return Ok(());
                        }
                        broken = true;
                    }
                }
            }
            Command::DeleteBefore(cutoff) => {
                if !broken {
                    if let Err(err) = sink.delete_before(cutoff) {
                        fatal(err, &held);
                        return Ok(());
                    }
                }
                held.push(Held::DeleteBefore(cutoff));
            }
            Command::Commit => {
                let started = std::time::Instant::now();
                let committed = if broken {
                    redo(&mut sink, &held).and_then(|()| sink.commit(bus))
                } else {
                    sink.commit(bus)
                };
                metrics::histogram!(COMMIT_DURATION).record(started.elapsed().as_secs_f64());
                match committed {
                    Ok(()) => {
                        broken = false;
                        let _ = answers.send(Ok(acked_by(&mut held)));
                    }
                    Err(err) if is_disk_full(&err) => {
                        COUNTERS.error("disk_full");
                        broken = true;
                        let _ = answers.send(Err(Failed {
                            error: err,
                            held: held.len(),
                        }));
                    }
                    Err(err) => {
                        COUNTERS.error("commit");
                        fatal(err, &held);
                        return Ok(());
                    }
                }
            }
        }
    }
    if broken {
        // What it holds stays unacked (redelivered from the bus after a restart); waiting
        // for tantivy's dead indexing threads would only report their write errors again.
        return Ok(());
    }
    sink.finish()
}

/// Rolls the writer back to the last commit and applies everything held again.
fn redo(sink: &mut IndexSink, held: &[Held]) -> StoreResult<()> {
    sink.rollback()?;
    for operation in held {
        match operation {
            Held::Event(delivery) => sink.add_delivery(delivery)?,
            Held::Pass(delivery) => sink.pass(delivery),
            Held::DeleteBefore(cutoff) => sink.delete_before(*cutoff)?,
        }
    }
    Ok(())
}

/// The newest delivery per partition of what a commit made durable (acking it acks those
/// before it), and the events it indexed counted; `held` is emptied.
fn acked_by(held: &mut Vec<Held>) -> Committed {
    let mut committed = Committed::new();
    let mut events = 0u64;
    for operation in held.drain(..) {
        let delivery = match operation {
            Held::Event(delivery) => {
                events += 1;
                delivery
            }
            Held::Pass(delivery) => delivery,
            Held::DeleteBefore(_) => continue,
        };
        committed.insert((delivery.topic, delivery.partition), delivery);
    }
    COUNTERS.sent(events);
    committed
}

#[cfg(test)]
mod tests {
    use super::panicked;

    #[test]
    fn a_panic_of_the_writer_thread_says_why() {
        for payload in [
            std::thread::spawn(|| panic!("segment {} lost", 7)).join(),
            std::thread::spawn(|| panic!("out of ids")).join(),
        ] {
            let err = panicked(payload.unwrap_err().as_ref());
            assert!(
                matches!(err, tantivy::TantivyError::ErrorInThread(_)),
                "{err:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains("segment 7 lost") || text.contains("out of ids"),
                "{text}"
            );
        }
    }
}
