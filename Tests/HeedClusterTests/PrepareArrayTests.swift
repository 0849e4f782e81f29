import Foundation
import HeedCore
import HeedData
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `heed prepare --part k/N` and `--merge` through the binary, and the Slurm array recipe
/// (`cluster/slurm/prepare-array.sbatch`) on a real Slurm cluster of namespace hosts: the
/// merged parts equal one `heed prepare` of the same input, file for file.
@Suite(.serialized) struct PrepareArrayTests {
    static let input = ClusterHarness.repository + "/data/taobao-userbehavior-sample"
    static let flags = ["--dataset", "taobao", "--input", input, "--shards", "2", "--split", "time"]

    /// Expects every file of `a` to equal the same file of `b`, and the same file names.
    static func expectSameFiles(_ a: String, _ b: String) {
        let names = FileOps.list(a).sorted()
        #expect(names == FileOps.list(b).sorted() && names.contains("manifest.json"), "\(a) vs \(b)")
        for name in names {
            #expect(FileManager.default.contents(atPath: a + "/" + name) == FileManager.default.contents(atPath: b + "/" + name), "\(name) differs")
        }
    }

    /// Runs `heed` and returns (exit status, output).
    static func heed(_ arguments: [String]) async throws -> (Int32?, String) {
        let run = try LauncherTests.Run(arguments)
        let status = await run.exit(within: 120)
        return (status, run.output)
    }

    @Test func partsPreparedAndMergedByTheBinaryEqualOnePrepare() async throws {
        let dir = NSTemporaryDirectory() + "heed-prepare-parts-\(getpid())"
        try FileOps.makeDirectories(dir)
        defer { FileOps.removeTree(dir) }
        var (status, output) = try await Self.heed(["prepare"] + Self.flags + ["--out", dir + "/whole"])
        #expect(status == 0, "\(output)")
        for k in 0..<3 {
            (status, output) = try await Self.heed(["prepare"] + Self.flags + ["--part", "\(k)/3", "--out", dir + "/part-\(k)"])
            #expect(status == 0, "\(output)")
            #expect(try DatasetManifest.load(directory: dir + "/part-\(k)").settings.part == "\(k)/3")
        }
        (status, output) = try await Self.heed(["prepare", "--merge", dir + "/part-2", dir + "/part-0", dir + "/part-1", "--out", dir + "/merged"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("merged 3 parts"), "\(output)")
        Self.expectSameFiles(dir + "/whole", dir + "/merged")

        // Clear errors, non-zero exits.
        for (arguments, words) in [
            (Self.flags + ["--part", "3/3", "--out", dir + "/bad"], ["--part 3/3", "k in 0..<N"]),
            (Self.flags + ["--part", "two", "--out", dir + "/bad"], ["--part: 'two' is not k/N"]),
            (Self.flags + ["--part", "0/2", "--memory-budget", "unbounded", "--out", dir + "/bad"], ["--part needs the external sort"]),
            (["--merge", dir + "/part-0", dir + "/part-1", "--out", dir + "/bad"], ["part 2/3 missing"]),
            (["--merge", dir + "/part-0", "--dataset", "taobao", "--out", dir + "/bad"], ["--merge takes the part directories"]),
        ] {
            (status, output) = try await Self.heed(["prepare"] + arguments)
            #expect(status == 1, "\(arguments): \(output)")
            #expect(words.allSatisfy { output.contains($0) }, "\(arguments): \(output)")
        }
        #expect(!FileOps.exists(dir + "/bad"))
    }

    /// The array job on 3 Slurm nodes (one part each) and its dependent merge job.
    @Test(.enabled(if: SlurmBed.available, "skipped: a Slurm bed needs root, network namespaces, slurm-wlm and munge (scripts/install-deps.sh --multi-host)"))
    func theSlurmArrayRecipePreparesPartsOnThreeNodesAndMergesThem() async throws {
        let tag = "p\(getpid() % 100_000)"
        let dir = NSTemporaryDirectory() + "heed-prepare-array-\(getpid())"
        try FileOps.makeDirectories(dir)
        defer {
            _ = try? LauncherTests.Run(executable: SlurmBed.script, ["down", tag]).wait(seconds: 60)
            FileOps.removeTree(dir)
        }
        let up = try LauncherTests.Run(executable: SlurmBed.script, ["up", tag, "3"])
        #expect(await up.exit(within: 120) == 0, "\(up.output)")
        let binDir = URL(fileURLWithPath: LauncherTests.binary).deletingLastPathComponent().path
        let recipe = ClusterHarness.repository + "/cluster/slurm/prepare-array.sbatch"
        let shared = dir + "/shared"
        let array = try SlurmBed.slurm(tag: tag, ["sbatch", "--parsable", "--array=0-2", "--output=\(dir)/part-%a.out", "--chdir=\(dir)",
                                                  "--export=ALL,SHARED=\(shared)", recipe] + Self.flags, extraPath: binDir)
        #expect(await array.exit(within: 60) == 0, "\(array.output)")
        let job = try #require(array.output.split(separator: "\n").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }, "\(array.output)")
        let merge = try SlurmBed.slurm(tag: tag, ["sbatch", "--parsable", "--dependency=afterok:\(job)", "--output=\(dir)/merge.out", "--chdir=\(dir)",
                                                  "--export=ALL,SHARED=\(shared),OUT=\(dir)/merged", recipe, "--merge"], extraPath: binDir)
        #expect(await merge.exit(within: 60) == 0, "\(merge.output)")
        let mergeJob = try #require(merge.output.split(separator: "\n").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }, "\(merge.output)")
        let left = await waitUntil(timeout: .seconds(300), interval: .milliseconds(200)) {
            guard let q = try? SlurmBed.slurm(tag: tag, ["squeue", "-h", "-j", "\(job),\(mergeJob)"]), q.wait(seconds: 30) == 0 else { return false }
            return q.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
        }
        let logs = ((0..<3).map { "\(dir)/part-\($0).out" } + ["\(dir)/merge.out"]).map { (try? String(contentsOfFile: $0, encoding: .utf8)) ?? "" }
        #expect(left, "jobs still queued or running after 300 s: \(logs)")
        #expect(logs[3].contains("merged 3 parts"), "\(logs)")
        // Each array task prepared its part on a node of the bed (the partition lets Slurm
        // place two tasks on one node, so which nodes is Slurm's choice).
        for k in 0..<3 {
            #expect(logs[k].contains("wrote \(shared)/part-\(k)") && logs[k].contains("prepare-array: part \(k)/3 on \(tag)n"), "\(logs[k])")
        }

        let whole = try LauncherTests.Run(["prepare"] + Self.flags + ["--out", dir + "/whole"])
        #expect(await whole.exit(within: 120) == 0, "\(whole.output)")
        Self.expectSameFiles(dir + "/whole", dir + "/merged")
    }
}
