import Foundation
import HeedCore

/// This process's resident memory, read from `/proc/self/statm` (Linux).
public enum ResidentMemory {
    /// Resident bytes now, or nil where `/proc/self/statm` cannot be read.
    public static func bytes(ofProcess pid: Int32? = nil) -> Int? {
        let path = pid.map { "/proc/\($0)/statm" } ?? "/proc/self/statm"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        // statm: size resident shared text lib data dt, in pages.
        let fields = text.split(separator: " ")
        guard fields.count >= 2, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
