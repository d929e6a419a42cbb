//! The index writer on a thread of its own: built documents in, committed deliveries out.
//!
//! A tantivy commit blocks its caller while the indexing threads finish and write their
//! segments and the commit is made durable; on the consuming task that stalled decoding and
//! building the next documents, which cost as much again. Here the consuming task only
//! queues work, and keeps reading the bus while a commit runs; it acks what a commit holds
//! once this thread says the commit is done.

use crate::ingest::COUNTERS;
use crate::store::{IndexSink, StoreResult};
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

enum Command {
    Add(Vec<Built>),
    DeleteBefore(chrono::DateTime<chrono::Utc>),
    Commit,
}

/// The consuming task's side of the writer thread.
pub struct Writer {
    commands: Option<mpsc::Sender<Command>>,
    /// One answer per `commit`, in order: what it made durable (to ack), or why it failed.
    committed: mpsc::UnboundedReceiver<StoreResult<Committed>>,
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
    pub async fn next_commit(&mut self) -> Option<StoreResult<Committed>> {
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
            Some(Err(_)) => Err(stopped()),
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
            answer?;
        }
        Err(stopped())
    }
}

fn stopped() -> tantivy::TantivyError {
    tantivy::TantivyError::SystemError("the index writer thread stopped".into())
}

/// The thread: applies commands in order; answers each commit; on an error answers it and
/// stops (the consuming task then fails, and a restart resumes from the last commit).
fn write(
    mut sink: IndexSink,
    bus: &'static str,
    mut inbox: mpsc::Receiver<Command>,
    answers: mpsc::UnboundedSender<StoreResult<Committed>>,
) -> StoreResult<()> {
    let mut pending = Committed::new();
    let mut added = 0u64;
    while let Some(command) = inbox.blocking_recv() {
        let done = match command {
            Command::Add(batch) => batch.into_iter().try_for_each(|built| {
                match built.event {
                    Some((id, document)) => {
                        sink.add(&id, document, Some(&built.delivery))?;
                        added += 1;
                    }
                    None => sink.pass(&built.delivery),
                }
                let partition = (built.delivery.topic, built.delivery.partition);
                pending.insert(partition, built.delivery);
                Ok(())
            }),
            Command::DeleteBefore(cutoff) => sink.delete_before(cutoff),
            Command::Commit => {
                let committed = sink.commit(bus).map(|()| {
                    COUNTERS.sent(std::mem::take(&mut added));
                    std::mem::take(&mut pending)
                });
                let failed = committed.is_err();
                if failed {
                    COUNTERS.error("commit");
                }
                // The consuming task may be gone (it failed); nothing to tell then.
                let _ = answers.send(committed);
                if failed {
                    return Ok(());
                }
                Ok(())
            }
        };
        if let Err(err) = done {
            let _ = answers.send(Err(err));
            return Ok(());
        }
    }
    sink.finish()
}
