import Foundation
/// Everything `heed prepare` needs, as typed values (the CLI reads flags into this once).
public struct PrepareOptions: Sendable {
    /// The source datasets Heed knows, plus the documented generic schema.
    public enum Dataset: String, CaseIterable, Sendable {
        /// Amazon 2014 Beauty, S3-Rec files.
        case amazonBeauty = "amazon-beauty"
        /// Amazon 2014 Sports and Outdoors, S3-Rec files.
        case amazonSports = "amazon-sports"
        /// Amazon 2014 Toys and Games, S3-Rec files.
        case amazonToys = "amazon-toys"
        /// Amazon 2014 Video Games, SASRec file.
        case amazonVideoGames = "amazon-video-games"
        /// Amazon 2014 Grocery, ReChorus files with item relations.
        case amazonGrocery = "amazon-grocery"
        /// Taobao UserBehavior CSV.
        case taobao = "taobao"
        /// Ciao ratings with trust network.
        case ciao = "ciao"
        /// UCI Online Retail invoice lines.
        case uciRetail = "uci-retail"
        /// dunnhumby / 84.51° The Complete Journey.
        case completeJourney = "completejourney"
        /// The documented generic CSV/TSV schema.
        case generic = "generic"
    }

    /// How records are built from each user's behaviour sequence.
    public enum SampleProtocol: String, CaseIterable, Sendable {
        /// DIN-style: every eligible position → one positive plus one sampled negative.
        case ctr
        /// Next-item: one train record per user (its last train position), one per held-out position.
        case seq
    }

    /// How positions are assigned to train/valid/test.
    public enum SplitRule: Equatable, Sendable {
        /// Per user: last eligible position → test, second last → valid, the rest → train.
        case leaveOneOut
        /// By event time: `< validFrom` train, `< testFrom` valid, else test; nil bounds
        /// default to the 80 % and 90 % quantiles of all kept event times.
        case time(validFrom: Int64?, testFrom: Int64?)
    }

    /// One of N parts of the users (`--part k/N`).
    public struct Part: Equatable, Sendable {
        /// 0-based part index.
        public var index: Int
        /// Number of parts.
        public var count: Int
        public init(index: Int, count: Int) {
            self.index = index
            self.count = count
        }
    }

    /// Which dataset loader to use.
    public var dataset: Dataset
    /// Dataset folder (or the event file itself for single-file datasets).
    public var input: String?
    /// Overrides / generic: event file.
    public var events: String?
    /// Overrides / generic: item file.
    public var items: String?
    /// Overrides / generic: social links file.
    public var social: String?
    /// Overrides: user attribute file (Complete Journey demographics).
    public var users: String?
    /// Output dataset directory (must not exist unless `overwrite`).
    public var output: String
    /// Record protocol.
    public var sampleProtocol: SampleProtocol = .ctr
    /// Split rule.
    public var split: SplitRule = .leaveOneOut
    /// Shards per split (train, valid and test each get this many files).
    public var shards: Int = 1
    /// Behaviour history cap (most recent kept).
    public var maxLength: Int = 50
    /// Seed for negative sampling and train shard assignment.
    public var seed: UInt64 = 1
    /// Price-level buckets within a category.
    public var priceLevels: Int = 10
    /// Cap on attribute tokens per item.
    public var maxAttributes: Int = 16
    /// Cap on title words per item.
    public var maxTextTokens: Int = 16
    /// Cap on social neighbours per user.
    public var maxNeighbors: Int = 20
    /// Cap on complement / substitute items per item.
    public var maxRelations: Int = 20
    /// Event types whose positions become targets (nil = all); history always has every event.
    public var targetEvents: Set<EventType>? = nil
    /// With ratings: a rated event is a positive (`click` = 1) only if its rating is at least
    /// this; a lower-rated event still makes a record of its real item, labelled 0 (nil = every
    /// event is a positive).
    public var positiveRating: Double? = nil
    /// Sample shard format: 2 (compact: records refer to one sequence file; the default) or
    /// 1 (every record stores its keys; larger, read by older builds).
    public var shardFormat = 2
    /// `--memory-budget`: bytes the prepare should stay within. Events are sorted by (user, time)
    /// in runs that fit, spilled beside the output and merged; the id maps and item tables stay
    /// resident (docs/data-format.md §7). nil keeps every event in memory (the pre-budget path).
    public var memoryBudget: Int? = PrepareOptions.defaultMemoryBudget
    /// The default `--memory-budget`: 4 GiB, a sixth of our 24 GiB machines.
    public static let defaultMemoryBudget = 4 << 30
    /// `--part k/N`: keep only the users whose raw id hashes to part k of N (`heed prepare --merge`
    /// joins the parts); item tables, negatives and time bounds still come from every event.
    public var part: Part? = nil
    /// `--threads`: threads that build records (compact shards; users are split into ranges,
    /// so the output is the same for any count). Default: the machine's cores.
    public var threads = max(1, min(256, ProcessInfo.processInfo.activeProcessorCount))
    /// Skip and count bad rows instead of failing.
    public var skipBadRows = false
    /// Replace an existing output directory.
    public var overwrite = false

    /// Options with defaults for everything but the dataset and output.
    public init(dataset: Dataset, input: String?, output: String) {
        self.dataset = dataset
        self.input = input
        self.output = output
    }
}
