import Foundation

/// A fresh ipc address per test, so parallel tests never share a socket file.
func uniqueIPCAddress(_ name: String = #function) -> String {
    let clean = name.filter { $0.isLetter || $0.isNumber }
    return "ipc:///tmp/heed-bench-\(getpid())-\(clean)-\(UInt32.random(in: 0 ... .max)).ipc"
}
