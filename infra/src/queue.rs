//! Job queues: the same port on Redis Streams (shared by any number of worker
//! processes) and in process (the embedded mode).

mod local;
mod redis_streams;

pub use local::LocalJobQueue;
pub use redis_streams::{QueueHealth, RedisJobQueue};
