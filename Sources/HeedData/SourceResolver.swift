import HeedCore

/// Finds a dataset's input files from `--input` and the per-role overrides.
enum SourceResolver {
    /// The path for `role`: the override if given, else `input` itself when it is a file
    /// and `inputMayBeFile`, else the first of `candidates` present in the `input` folder.
    static func resolve(input: String?, override: String?, candidates: [String], role: String,
                        dataset: String, inputMayBeFile: Bool = false) throws -> String {
        if let override {
            guard FileOps.exists(override) else { throw HeedError(.notFound, "\(override): \(role) file not found") }
            return override
        }
        guard let input else {
            throw HeedError(.config, "dataset \(dataset) needs --input (a folder with \(candidates.joined(separator: " or ")))")
        }
        guard FileOps.exists(input) else { throw HeedError(.notFound, "\(input): input not found") }
        if !FileOps.isDirectory(input) {
            if inputMayBeFile { return input }
            throw HeedError(.config, "\(input): dataset \(dataset) expects a folder holding \(candidates.joined(separator: " or "))")
        }
        for c in candidates where FileOps.exists(input + "/" + c) { return input + "/" + c }
        throw HeedError(.notFound, "\(input): no \(role) file for dataset \(dataset) (looked for \(candidates.joined(separator: ", ")))")
    }

    /// Like `resolve`, but nil when the folder simply lacks the optional file.
    static func optional(input: String?, override: String?, candidates: [String]) throws -> String? {
        if let override {
            guard FileOps.exists(override) else { throw HeedError(.notFound, "\(override): file not found") }
            return override
        }
        guard let input, FileOps.isDirectory(input) else { return nil }
        for c in candidates where FileOps.exists(input + "/" + c) { return input + "/" + c }
        return nil
    }

    /// `name.gz` and `name`, in that order.
    static func gzOrPlain(_ name: String) -> [String] { [name + ".gz", name] }
}
