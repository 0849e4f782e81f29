#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A task executor that lets a task continue on the nng callback thread that completed
/// its request, instead of waking a cooperative-pool thread for it.
///
/// Profiling the pull loop showed most of the cost of a small request in thread
/// wake-ups: the reply arrives on an nng thread, which resumed the awaiting task onto
/// the global pool, which woke a second thread just to decode the reply and send the
/// next request. Raw nng does both on the callback thread. A task (or task group
/// child) started with this executor as its preference does the same: when
/// `NNGClientSlot` resumes its continuation, the job is caught here and run right after
/// the resume, on the callback thread, until the task's next suspension (typically the
/// next request). Jobs enqueued anywhere else go to the global concurrent executor,
/// so the preference is harmless off the hot path.
///
/// Only give this preference to short request loops (send, check, copy the reply):
/// whatever the task does up to its next `await` runs on one of nng's few threads.
/// Closing an `NNGClient` from such a task is safe (the close is moved off the callback
/// thread, see `CallbackThread.isActive`).
@available(macOS 15.0, *)
public final class NNGCompletionExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: stateless; the per-thread capture slot lives in thread-local storage.

    /// The process-wide instance (it holds no state).
    public static let shared = NNGCompletionExecutor()

    private init() {}

    public func enqueue(_ job: consuming ExecutorJob) {
        if let slot = CallbackThread.captureSlot, slot.pointee == nil {
            slot.pointee = UnownedJob(job)
            return
        }
        globalConcurrentExecutor.enqueue(job)
    }
}

/// Thread-local state of an nng callback: where `NNGCompletionExecutor` parks the job
/// of the task being resumed, and whether a job is running inline on the callback.
enum CallbackThread {
    // Two pthread keys rather than Swift globals: the state is per thread.
    private static let captureKey: pthread_key_t = makeKey()
    private static let activeKey: pthread_key_t = makeKey()

    private static func makeKey() -> pthread_key_t {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key, nil)
        precondition(rc == 0, "pthread_key_create failed with \(rc)")
        return key
    }

    /// The slot a job resumed on this thread is parked in, while `resumeCapturing` runs.
    static var captureSlot: UnsafeMutablePointer<UnownedJob?>? {
        pthread_getspecific(captureKey)?.assumingMemoryBound(to: UnownedJob?.self)
    }

    /// True while a job runs inline on an nng callback thread. Code that would wait for
    /// nng callbacks to finish (`nng_aio_stop`) must not run there: it would wait for itself.
    static var isActive: Bool { pthread_getspecific(activeKey) != nil }

    /// Calls `resume` (which resumes one continuation), then runs the resumed task's job
    /// here if it prefers `NNGCompletionExecutor`. Call from nng callbacks only, with no
    /// lock held.
    static func resumeCapturing(_ resume: () -> Void) {
        guard #available(macOS 15.0, *), !isActive else {
            // Already running a job inline (a nested completion): never nest, hand it to the pool.
            resume()
            return
        }
        var parked: UnownedJob?
        withUnsafeMutablePointer(to: &parked) { slot in
            // Safe: the slot outlives the resume; the key is cleared before it goes away.
            pthread_setspecific(captureKey, slot)
            resume()
            pthread_setspecific(captureKey, nil)
        }
        guard let job = parked else { return }
        // Any non-nil pointer marks the thread; the key's value is never dereferenced.
        pthread_setspecific(activeKey, UnsafeRawPointer(bitPattern: 1))
        job.runSynchronously(on: NNGCompletionExecutor.shared.asUnownedTaskExecutor())
        pthread_setspecific(activeKey, nil)
    }
}
