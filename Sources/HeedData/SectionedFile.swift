import CZlib
import Foundation
import HeedCore

/// A mapped Heed data file whose container (`ShardLayout`) has been validated: magic,
/// version, header CRC, section bounds and alignment, and (by default) the payload CRC.
///
/// What the sections must be is the caller's check (it knows the kind of file).
struct SectionedFile {
    /// The mapping.
    let file: MappedFile
    /// Format version from the header.
    let version: UInt32
    /// The header's record count (records, or events for the sequence file).
    let recordCount: Int
    /// The JSON blob after the section table.
    let json: Data
    /// The section table in file order.
    let sections: [ShardLayout.Section]
    /// Bytes before the payload.
    let headerBytes: Int
    /// Payload CRC-32 stored in the header.
    let payloadCRC: UInt32

    /// Opens and validates `path`, a `what` file with `magic` and a version in `versions`.
    init(path: String, magic: [UInt8], what: String, versions: ClosedRange<UInt32>, verifyChecksum: Bool) throws {
        let file = try MappedFile(path: path)
        func corrupt(_ message: String) -> HeedError { HeedError(.corrupt, "\(path): \(message)") }
        let size = file.count
        guard size >= ShardLayout.fixedHeaderBytes else {
            throw corrupt("file of \(size) bytes is too short for a \(what) header (\(ShardLayout.fixedHeaderBytes) bytes)")
        }
        let head = file.withBytes { raw -> (magic: [UInt8], version: UInt32, headerBytes: Int, count: UInt64, payload: UInt64, crc: UInt32, jsonBytes: Int, sections: Int, headerCRC: UInt32) in
            func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
            func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
            return (Array(raw[0..<8]), u32(8), Int(u32(12)), u64(16), u64(24), u32(32), Int(u32(36)), Int(u32(40)), u32(44))
        }
        guard head.magic == magic else {
            throw corrupt("not a Heed \(what) (magic \(head.magic.map { String(format: "%02x", $0) }.joined()), expected \"\(String(decoding: magic, as: UTF8.self))\")")
        }
        guard versions.contains(head.version) else {
            throw HeedError(.unsupported, "\(path): \(what) format version \(head.version) is not supported (this build reads versions \(versions.lowerBound)-\(versions.upperBound); prepare the dataset again with this build's heed prepare)")
        }
        guard head.headerBytes >= ShardLayout.fixedHeaderBytes, head.headerBytes <= size,
              ShardLayout.fixedHeaderBytes + head.sections * ShardLayout.sectionEntryBytes + head.jsonBytes <= head.headerBytes else {
            throw corrupt("header size \(head.headerBytes) with \(head.sections) sections and \(head.jsonBytes) JSON bytes does not fit the file (\(size) bytes)")
        }
        let headerCRC = file.withBytes { raw -> UInt32 in
            var c = CRC32()
            c.update(UnsafeRawBufferPointer(rebasing: raw[0..<44]))
            c.update([0, 0, 0, 0])
            c.update(UnsafeRawBufferPointer(rebasing: raw[48..<head.headerBytes]))
            return c.value
        }
        guard headerCRC == head.headerCRC else {
            throw corrupt("header checksum mismatch (stored \(hex(head.headerCRC)), computed \(hex(headerCRC)))")
        }
        guard UInt64(head.headerBytes) + head.payload == UInt64(size) else {
            throw corrupt("file is \(size) bytes but the header says \(head.headerBytes) + \(head.payload) (truncated or extended)")
        }
        guard head.count <= UInt64(size) else { throw corrupt("record count \(head.count) is impossible for \(size) bytes") }
        let jsonStart = ShardLayout.fixedHeaderBytes + head.sections * ShardLayout.sectionEntryBytes
        json = file.withBytes { Data($0[jsonStart..<(jsonStart + head.jsonBytes)]) }
        sections = try (0..<head.sections).map { i in
            let at = ShardLayout.fixedHeaderBytes + i * ShardLayout.sectionEntryBytes
            let (k, s, o, l) = file.withBytes { raw in
                (UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self)),
                 UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self)),
                 UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at + 8, as: UInt64.self)),
                 UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at + 16, as: UInt64.self)))
            }
            guard let kind = ShardLayout.SectionKind(rawValue: k), o <= UInt64(size), l <= UInt64(size) - o,
                  Int(o) % ShardLayout.alignment == 0 else {
                throw corrupt("section \(i) (kind \(k), offset \(o), length \(l)) is invalid for a \(size)-byte file")
            }
            return ShardLayout.Section(kind: kind, slot: Int(s), offset: Int(o), length: Int(l))
        }
        if verifyChecksum {
            let crc = file.withBytes { CRC32.of(UnsafeRawBufferPointer(rebasing: $0[head.headerBytes...])) }
            guard crc == head.crc else {
                throw corrupt("payload checksum mismatch (stored \(hex(head.crc)), computed \(hex(crc)))")
            }
        }
        self.file = file
        version = head.version
        recordCount = Int(head.count)
        headerBytes = head.headerBytes
        payloadCRC = head.crc
    }
}

/// Writes one container file whose section sizes are known up front.
///
/// Each section is streamed through its own buffered cursor at its final offset, so
/// values are appended once in order; the payload CRC is combined from the per-section
/// CRCs (`crc32_combine`) without reading the file back. The header goes last.
final class SectionedFileWriter {
    /// Path being written.
    let path: String
    /// The planned layout.
    let layout: ShardLayout
    private let magic: [UInt8]
    private let version: UInt32
    private let json: [UInt8]
    private let file: PosixFile
    private var cursors: [Cursor]

    /// Creates `path` for `layout`; `flushBytes` is the buffered size per section before a write.
    init(path: String, layout: ShardLayout, magic: [UInt8], version: UInt32, json: [UInt8], flushBytes: Int = 1 << 15) throws {
        self.path = path
        self.layout = layout
        self.magic = magic
        self.version = version
        self.json = json
        file = try PosixFile(creating: path)
        cursors = layout.sections.map { Cursor(offset: $0.offset, planned: $0.length, flushBytes: flushBytes) }
    }

    /// Appends one little-endian word to section `i`.
    @inline(__always)
    func append<T: FixedWidthInteger>(_ value: T, to i: Int) throws {
        try withUnsafeBytes(of: value.littleEndian) { try cursors[i].append($0, file) }
    }

    /// Appends raw bytes to section `i`.
    func append(_ bytes: UnsafeRawBufferPointer, to i: Int) throws { try cursors[i].append(bytes, file) }

    /// Appends a whole array's bytes to section `i`.
    func append<T>(contentsOf values: [T], to i: Int) throws {
        try values.withUnsafeBytes { try cursors[i].append($0, file) }
    }

    /// Pads and flushes every section, writes the header and syncs; returns size and payload CRC.
    ///
    /// - Throws: `HeedError(.internalError)` when a section did not get its planned bytes.
    func finish() throws -> (bytes: Int, payloadCRC: UInt32) {
        var crc: uLong = crc32(0, nil, 0)
        for i in cursors.indices {
            try cursors[i].finish(file)
            guard cursors[i].written == cursors[i].planned else {
                throw HeedError(.internalError, "\(path): section \(i) (\(layout.sections[i].kind)) has \(cursors[i].written) bytes, \(cursors[i].planned) planned")
            }
            crc = crc32_combine(crc, cursors[i].crc, off_t(ShardLayout.aligned(cursors[i].planned)))
        }
        let header = layout.headerBytes(magic: magic, version: version, schemaJSON: json, payloadCRC: UInt32(crc))
        try file.write(header, at: 0)
        try file.syncAndClose()
        return (layout.fileBytes, UInt32(crc))
    }

    /// A buffered sequential writer for one section.
    private struct Cursor {
        var offset: Int
        let planned: Int
        var written = 0
        var crc: uLong = crc32(0, nil, 0)
        var buffer: [UInt8] = []
        /// Buffered bytes that trigger a write.
        let flushBytes: Int

        /// A cursor at `offset` that must receive exactly `planned` bytes.
        init(offset: Int, planned: Int, flushBytes: Int) {
            self.offset = offset
            self.planned = planned
            self.flushBytes = flushBytes
        }

        /// Appends raw bytes.
        mutating func append(_ bytes: UnsafeRawBufferPointer, _ file: PosixFile) throws {
            buffer.append(contentsOf: bytes)
            if buffer.count >= flushBytes { try flush(file) }
        }

        /// Writes the buffer at the cursor and folds it into the section CRC.
        mutating func flush(_ file: PosixFile) throws {
            guard !buffer.isEmpty else { return }
            try buffer.withUnsafeBytes { raw in
                try file.write(raw, at: offset)
                // Safe: zlib reads exactly raw.count bytes of the buffer.
                crc = crc32_z(crc, raw.baseAddress!.assumingMemoryBound(to: UInt8.self), raw.count)
            }
            offset += buffer.count
            written += buffer.count
            buffer.removeAll(keepingCapacity: true)
        }

        /// Flushes and writes the zero padding up to the 64-byte boundary.
        mutating func finish(_ file: PosixFile) throws {
            try flush(file)
            let pad = ShardLayout.aligned(planned) - written
            if pad > 0 && written == planned {
                buffer = [UInt8](repeating: 0, count: pad)
                try flush(file)
                written -= pad
            }
        }
    }
}
