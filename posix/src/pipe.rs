//! Anonymous pipes: a one-way byte stream between a parent and a child (or
//! two threads), carrying framed messages as [`Framed`] ends.
//!
//! The invariant: both ends are close-on-exec, so a child inherits only the
//! end it is handed (as its stdin, say), and the reader sees end of file
//! once every writing end is closed.

use crate::framed::Framed;
use crate::{Error, Result};

impl Framed {
    /// A new anonymous pipe: (writing end, reading end), both close-on-exec.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Error, Framed, MessageReceiver, MessageSender};
    ///
    /// let (mut tx, mut rx) = Framed::pipe(64)?;
    /// tx.send(b"down the pipe")?;
    /// drop(tx); // the last writing end: the reader sees the end
    /// let mut buf = [0; 64];
    /// assert_eq!(rx.recv(&mut buf)?, 13);
    /// assert!(matches!(rx.recv(&mut buf), Err(Error::Disconnected)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn pipe(max_message: usize) -> Result<(Framed, Framed)> {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| Error::io("pipe", e))?;
        Ok((
            Framed::new(write, max_message)?,
            Framed::new(read, max_message)?,
        ))
    }
}
