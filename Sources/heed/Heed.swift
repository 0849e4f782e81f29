import ArgumentParser
import HeedLayers
import HeedTransport

/// The one Heed binary: every role and tool is a subcommand.
@main
struct Heed: ParsableCommand {
    /// One OpenBLAS thread per process: on this kind of machine two are slower than one
    /// (PLATFORM.md), and Heed parallelises across workers and servers instead. Without
    /// this, OpenBLAS's idle threads spin in sched_yield next to the training loop.
    ///
    /// Freed nng message buffers stay in the heap (`MessageMemory`): every role sends and
    /// receives messages of up to megabytes many thousand times a second.
    static func main() {
        setBLASThreads(1)
        MessageMemory.retainFreedBuffers()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "heed",
        abstract: "A distributed parameter-server trainer for e-commerce recommendation models.",
        discussion: "Train on one machine (a local cluster of processes) or run one role per host.",
        version: "0.1.0",
        subcommands: [
            PrepareCommand.self, TrainCommand.self,
            CoordinatorCommand.self, ServerCommand.self, WorkerCommand.self,
            EvalCommand.self, RecommendCommand.self, CheckpointCommand.self,
            BenchCommand.self, ReportCommand.self,
        ]
    )
}

/// Thrown by subcommands that exist in the design but are not built yet; exits with 2.
/// Writes a line to standard error.
func printError(_ message: String) {
    var stderr = StandardError()
    print("heed: \(message)", to: &stderr)
}

/// A `TextOutputStream` over file descriptor 2.
struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var s = string
        s.withUTF8 { buf in _ = fputs_shim(buf) }
    }
}

#if canImport(Glibc)
import Glibc
private func fputs_shim(_ buf: UnsafeBufferPointer<UInt8>) -> Int {
    Glibc.write(2, buf.baseAddress, buf.count)
}
#endif
