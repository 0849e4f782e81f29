import HeedCore
import HeedData
import HeedLayers

/// The three scoring parts of `hybrid`, in the order of its user and item vectors.
public enum HybridPart: Int, CaseIterable, Sendable {
    /// Matrix factorisation: user row · item row.
    case mf = 0
    /// A GRU or LSTM over the time-ordered items: its state · the item's sequence row.
    case seq = 1
    /// Two MLP towers over user/category and item/category(/price level) features.
    case mlp = 2

    /// The config name (`[model] parts`).
    public var name: String { ["mf", "seq", "mlp"][rawValue] }
}

/// `hybrid` (source document 5): matrix factorisation, a recurrent sequence model and an MLP,
/// blended by a gate, generic over the scalar type so the Float model that trains is the
/// network gradient-checked in Double.
///
/// For a user u whose items up to position t are `s_0 … s_t` (oldest first), with D = `dim`:
/// - MF: `a_mf = P[u]` (D), item side `b_mf(i) = Q[i]`;
/// - sequence: `a_seq = h_t`, the GRU/LSTM state after reading `E[s_0] … E[s_t]`; item side
///   `b_seq(i) = E[i]` (input and output embeddings shared, as in sasrec);
/// - MLP: user tower `a_mlp = MLP_u([M[u] ; C[cat(s_t)]])`, item tower
///   `b_mlp(i) = MLP_i([F[i] ; C[cat(i)] (; L[level(i)])])`;
/// - gate `g` (3): learned, `softmax_k(z_k)` over the enabled parts with `z = [a_mf; a_seq;
///   a_mlp]·W_g + b_g`, or fixed weights;
/// - score `s(u, t, i) = Σ_k g_k · a_k · b_k(i) = U · V(i)` with `U = [g_mf a_mf ; g_seq a_seq ;
///   g_mlp a_mlp]` and `V(i) = [b_mf(i) ; b_seq(i) ; b_mlp(i)]` (3D each).
///
/// Two options against a blend that leans on one part (both off by default, so models saved
/// before them load unchanged):
/// - `gateHistory`: the learned gate also reads `log(1 + n)`, n the number of items read so
///   far (at most W), so it can hand long histories to the sequence part and short ones to MF
///   and the towers: `z = [a_mf; a_seq; a_mlp; log(1 + n)]·W_g + b_g` (W_g: (3D + 1) × 3);
/// - `partLossWeight` λ > 0 with two parts or more: every enabled part's own score
///   `a_k · b_k(i)` is also trained with the same softmax, loss `L_blend + λ Σ_k L_k` (deep
///   supervision of each part), so each part stays a ranker on its own and the blend is an
///   ensemble of trained parts rather than one part with passengers. The per-part losses do
///   not reach the gate.
///
/// A third option, `userRowScale` s (1 by default): the network reads every user row (`P[u]`
/// and `M[u]`) as `s · row`. The seq protocol has one record per user, so a user row gets one
/// optimizer step per epoch; with Adam each step moves a row by about `lr` whatever its
/// gradient's size, so s multiplies the user rows' effective step (and initial scale) while
/// item rows, which are updated on almost every step, keep theirs.
///
/// Fourth, `mfLastItem` (off by default): the MF part becomes a factorised personalised Markov
/// chain (FPMC, Rendle et al. 2010): `a_mf = s P[u] + L[s_t]`, so MF scores `P[u]·Q[i] +
/// L[s_t]·Q[i]`, user × item plus last item × item (the item-to-item transition matrix
/// factorised). L is a fourth block of the item row, updated at every position where its
/// item is read, so the MF part learns from every interaction rather than one user row per
/// record; its score stays one dot product with `b_mf(i) = Q[i]`.
///
/// The gate reads only the user side, so a score stays one dot product of a user vector and
/// an item vector: full ranking scores the whole catalogue with one matrix product, as for
/// sasrec. Rows: user table (2D) `[P[u] | M[u]]`, item table (3D) `[Q[i] | E[i] | F[i]]`,
/// category table (D) `C`, price-level table (D) `L` when the data has prices. Dense: the
/// cell, both towers and the gate.
///
/// Training is next-item: every real position t of a sequence predicts `s_{t+1}` with a
/// softmax over the positive and the batch's shared candidates (`neg`: sampled items, or the
/// whole catalogue for the full softmax); a candidate equal to the position's positive is left
/// out of that position's softmax. The loss is the mean over real positions.
///
/// Batch fields (`HybridBatcher`): `user` (B), `seq`/`seq_cat` (B × W), `pos`/`pos_cat`
/// (B × W, training), `neg`/`neg_cat` (N), and `pos_price`/`neg_price` with prices.
struct HybridNetwork<T: Real>: Sendable {
    /// D.
    let dim: Int
    /// W.
    let window: Int
    /// Which parts score (indexed by `HybridPart.rawValue`).
    let enabled: [Bool]
    /// Learned gate (else `fixedWeights`).
    let learnedGate: Bool
    /// (3) the fixed blend, 0 for disabled parts.
    let fixedWeights: [T]
    /// The item tower reads a price-level row.
    let usesPriceLevel: Bool
    /// The learned gate also reads log(1 + items read).
    let gateHistory: Bool
    /// λ of the per-part losses (0: the blend's loss alone).
    let partLossWeight: T
    /// s: user rows are read as `s · row`.
    let userRowScale: T
    /// The MF part's user side adds the last item's transition row (FPMC).
    let mfLastItem: Bool
    /// The sequence cell (one of them).
    var gru: GRULayer<T>?
    var lstm: LSTMLayer<T>?
    /// [2D, hidden…, D] over `[M[u] ; C[cat]]`.
    var userTower: MLPLayer<T>
    /// [2D or 3D, hidden…, D] over `[F[i] ; C[cat(i)] (; L[level(i)])]`.
    var itemTower: MLPLayer<T>
    /// (3D × 3, or (3D + 1) × 3 with `gateHistory`) and (3) gate weights, with gradients.
    var gateWeight: Tensor<T>, gateBias: Tensor<T>, dGateWeight: Tensor<T>, dGateBias: Tensor<T>
    /// Length of the flat dense vector.
    private(set) var parameterCount = 0

    /// A network with weights drawn from `generator` (cell, user tower, item tower, gate).
    ///
    /// - Parameters:
    ///   - dim: D.
    ///   - window: W, the most recent items read.
    ///   - hidden: hidden widths of both towers.
    ///   - lstm: an LSTM instead of a GRU.
    ///   - parts: the parts that score (at least one).
    ///   - learnedGate: a learned gate, else `fixedWeights`.
    ///   - fixedWeights: (3) weights of mf, seq, mlp for the fixed blend.
    ///   - usesPriceLevel: the item tower reads price levels.
    ///   - gateHistory: the learned gate also reads log(1 + items read).
    ///   - partLossWeight: λ of the per-part losses (used with two parts or more).
    ///   - userRowScale: s, the factor on user rows as the network reads them.
    ///   - mfLastItem: MF's user side is `s P[u] + L[s_t]` (FPMC), L a fourth item-row block.
    init(dim: Int, window: Int, hidden: [Int], lstm: Bool, parts: Set<HybridPart>, learnedGate: Bool,
         fixedWeights: [Double], usesPriceLevel: Bool, gateHistory: Bool = false, partLossWeight: Double = 0,
         userRowScale: Double = 1, mfLastItem: Bool = false, generator: inout SeededGenerator) {
        precondition(dim > 0 && window > 0 && !parts.isEmpty && fixedWeights.count == 3, "hybrid: invalid sizes")
        self.dim = dim
        self.window = window
        enabled = HybridPart.allCases.map { parts.contains($0) }
        self.learnedGate = learnedGate
        self.fixedWeights = HybridPart.allCases.map { parts.contains($0) ? T(fixedWeights[$0.rawValue]) : 0 }
        self.usesPriceLevel = usesPriceLevel
        self.gateHistory = gateHistory
        self.partLossWeight = parts.count > 1 ? T(partLossWeight) : 0
        self.userRowScale = T(userRowScale)
        self.mfLastItem = mfLastItem
        if lstm { self.lstm = LSTMLayer(inputSize: dim, hiddenSize: dim, generator: &generator) }
        else { gru = GRULayer(inputSize: dim, hiddenSize: dim, generator: &generator) }
        userTower = MLPLayer(sizes: [2 * dim] + hidden + [dim], activation: .relu, generator: &generator)
        itemTower = MLPLayer(sizes: [(usesPriceLevel ? 3 : 2) * dim] + hidden + [dim], activation: .relu, generator: &generator)
        let gateInputs = 3 * dim + (gateHistory ? 1 : 0)
        gateWeight = Tensor(gaussian: [gateInputs, 3], std: (2.0 / Double(gateInputs + 3)).squareRoot(), generator: &generator)
        gateBias = Tensor(zeros: [3])
        dGateWeight = Tensor(zeros: [gateInputs, 3])
        dGateBias = Tensor(zeros: [3])
        var count = 0
        visitParameters { _, v, _ in count += v.count }
        parameterCount = count
    }

    /// Width of user and item vectors: 3D.
    var vectorWidth: Int { 3 * dim }

    /// Width of an item row: `[Q | E | F]` (3D), and `| L` (4D) with `mfLastItem`.
    var itemRowWidth: Int { (mfLastItem ? 4 : 3) * dim }

    /// Embedding tables (feature group → row width).
    var tableDims: [UInt8: Int] {
        var t: [UInt8: Int] = [FeatureGroup.user.rawValue: 2 * dim, FeatureGroup.item.rawValue: itemRowWidth,
                               FeatureGroup.category.rawValue: dim]
        if usesPriceLevel { t[FeatureGroup.priceLevel.rawValue] = dim }
        return t
    }

    // MARK: - Per-step state

    /// The user side of one forward: the positions scored and what backward needs.
    struct UserSide {
        /// (P) batch row and sequence position of each scored position (t = −1: empty history).
        var row: [Int] = [], step: [Int] = []
        /// W' the sequence was run over.
        var span = 1
        /// (B × W') 1 at real steps.
        var mask = Tensor<T>.empty
        /// (B × W' × D) sequence input (E rows of `seq`), and its output.
        var input = Tensor<T>.empty, output = Tensor<T>.empty
        /// (P) user row index (−1: none), category row index of s_t (−1: none).
        var userIndex: [Int] = [], categoryIndex: [Int] = []
        /// (B × W') item row index of each sequence input (−1 at padding).
        var seqIndex: [Int] = []
        /// (P × 3D) unweighted part vectors `[a_mf | a_seq | a_mlp]`.
        var parts = Tensor<T>.empty
        /// (P × 2D) user tower input.
        var towerInput = Tensor<T>.empty
        /// (P × 3D, or P × (3D + 1) with `gateHistory`) what the learned gate read.
        var gateInput = Tensor<T>.empty
        /// (P × 3) blend weights.
        var gate = Tensor<T>.empty
        /// (P × 3D) the user vectors U.
        var vectors = Tensor<T>.empty
    }

    /// The item side of one forward.
    struct ItemSideVectors {
        /// (K) item row index, category row index, price-level row index (−1: none).
        var itemIndex: [Int] = [], categoryIndex: [Int] = [], levelIndex: [Int] = []
        /// (K × 2D or 3D) item tower input.
        var towerInput = Tensor<T>.empty
        /// (K × 3D) item vectors V.
        var vectors = Tensor<T>.empty
    }

    // MARK: - User side

    /// User vectors at `positions` ((batch row, step) pairs; step −1 = no history item yet).
    ///
    /// - Parameters:
    ///   - batch: holds `user`, `seq`, `seq_cat`.
    ///   - rows: pulled rows per table.
    ///   - training: keep what backward needs.
    mutating func userSide(_ batch: ModelBatch, rows: [UInt8: TableRows<T>], positions: [(Int, Int)], training: Bool) -> UserSide {
        let seq = Self.field(batch, "seq"), seqCat = Self.field(batch, "seq_cat"), user = Self.field(batch, "user")
        let b = batch.size, w = seq.length, d = dim, p = positions.count
        var side = UserSide()
        side.row = positions.map(\.0); side.step = positions.map(\.1)
        let lengths = (0..<b).map { r in (0..<w).reduce(0) { $0 + (seq.mask[r * w + $1] != 0 ? 1 : 0) } }
        side.span = max(1, lengths.max() ?? 1)
        let l = side.span
        let items = rows[FeatureGroup.item.rawValue], users = rows[FeatureGroup.user.rawValue], cats = rows[FeatureGroup.category.rawValue]
        side.seqIndex = [Int](repeating: -1, count: b * l)
        side.mask = Tensor(zeros: [b, l])
        side.input = Tensor(zeros: [b, l, d])
        for r in 0..<b {
            for t in 0..<lengths[r] {
                let i = Self.index(items, seq.keys[r * w + t], "seq")
                side.seqIndex[r * l + t] = i
                side.mask.data[r * l + t] = 1
                for j in 0..<d { side.input.data[(r * l + t) * d + j] = items!.values.data[i * itemRowWidth + d + j] }
            }
        }
        if enabled[HybridPart.seq.rawValue] {
            var finalState = Tensor<T>.empty
            if gru != nil { gru!.forward(&side.output, &finalState, side.input, mask: side.mask) }
            else { var cell = Tensor<T>.empty; lstm!.forward(&side.output, &finalState, &cell, side.input, mask: side.mask) }
        }
        side.userIndex = side.row.map { r in user.mask[r] != 0 ? Self.index(users, user.keys[r], "user") : -1 }
        side.categoryIndex = positions.map { r, t in t >= 0 && seqCat.mask[r * w + t] != 0 ? Self.index(cats, seqCat.keys[r * w + t], "seq_cat") : -1 }
        side.parts = Tensor(zeros: [p, 3 * d])
        for k in 0..<p {
            let (r, t) = positions[k], u = side.userIndex[k]
            if enabled[HybridPart.mf.rawValue] && u >= 0 {
                for j in 0..<d { side.parts.data[k * 3 * d + j] = userRowScale * users!.values.data[u * 2 * d + j] }
            }
            if enabled[HybridPart.mf.rawValue] && mfLastItem && t >= 0 {
                let i = side.seqIndex[r * l + t]
                for j in 0..<d { side.parts.data[k * 3 * d + j] += items!.values.data[i * itemRowWidth + 3 * d + j] }
            }
            if enabled[HybridPart.seq.rawValue] && t >= 0 {
                for j in 0..<d { side.parts.data[k * 3 * d + d + j] = side.output.data[(r * l + t) * d + j] }
            }
        }
        if enabled[HybridPart.mlp.rawValue] {
            side.towerInput = Tensor(zeros: [p, 2 * d])
            for k in 0..<p {
                if side.userIndex[k] >= 0 { for j in 0..<d { side.towerInput.data[k * 2 * d + j] = userRowScale * users!.values.data[side.userIndex[k] * 2 * d + d + j] } }
                if side.categoryIndex[k] >= 0 { for j in 0..<d { side.towerInput.data[k * 2 * d + d + j] = cats!.values.data[side.categoryIndex[k] * d + j] } }
            }
            var out = Tensor<T>.empty
            userTower.forward(&out, side.towerInput, training: training)
            for k in 0..<p { for j in 0..<d { side.parts.data[k * 3 * d + 2 * d + j] = out.data[k * d + j] } }
        }
        side.gate = Tensor(zeros: [p, 3])
        if learnedGate {
            if gateHistory {
                let d3 = 3 * d
                side.gateInput = Tensor(zeros: [p, d3 + 1])
                for k in 0..<p {
                    for j in 0..<d3 { side.gateInput.data[k * (d3 + 1) + j] = side.parts.data[k * d3 + j] }
                    side.gateInput.data[k * (d3 + 1) + d3] = T.log(T(side.step[k] + 2))
                }
            } else {
                side.gateInput = side.parts
            }
            var z = Tensor<T>.empty
            denseForward(&z, side.gateInput, gateWeight, gateBias)
            for k in 0..<p {
                var m = -T.infinity
                for c in 0..<3 where enabled[c] { m = max(m, z.data[k * 3 + c]) }
                var sum: T = 0
                for c in 0..<3 where enabled[c] { let e = T.exp(z.data[k * 3 + c] - m); side.gate.data[k * 3 + c] = e; sum += e }
                for c in 0..<3 { side.gate.data[k * 3 + c] /= sum }
            }
        } else {
            for k in 0..<p { for c in 0..<3 { side.gate.data[k * 3 + c] = fixedWeights[c] } }
        }
        side.vectors = Tensor(zeros: [p, 3 * d])
        for k in 0..<p {
            for c in 0..<3 {
                let g = side.gate.data[k * 3 + c]
                for j in 0..<d { side.vectors.data[k * 3 * d + c * d + j] = g * side.parts.data[k * 3 * d + c * d + j] }
            }
        }
        return side
    }

    /// Backward of `userSide` (training forward): adds into the dense gradients and the row
    /// gradients of the user, item (sequence slice) and category tables.
    ///
    /// - Parameters:
    ///   - dVectors: (P × 3D) gradient of `side.vectors`.
    ///   - dPartsDirect: (P × 3D) gradient of the unweighted part vectors `side.parts` that
    ///     bypasses the gate (the per-part losses), or empty.
    ///   - dRows: per table, (U × row width) gradients aligned with `rows`, accumulated.
    mutating func userSideBackward(_ side: UserSide, _ dVectors: Tensor<T>, dPartsDirect: Tensor<T> = .empty, batch: ModelBatch,
                                   rows: [UInt8: TableRows<T>], dRows: inout [UInt8: Tensor<T>]) {
        let d = dim, p = side.row.count, l = side.span, b = batch.size
        // dA_k = g_k dU_k; dg_k = dU_k · a_k.
        var dParts = Tensor<T>(zeros: [p, 3 * d]), dGate = Tensor<T>(zeros: [p, 3])
        for k in 0..<p {
            for c in 0..<3 {
                let g = side.gate.data[k * 3 + c]
                var dg: T = 0
                for j in 0..<d {
                    let o = k * 3 * d + c * d + j
                    dParts.data[o] = g * dVectors.data[o]
                    dg += dVectors.data[o] * side.parts.data[o]
                }
                dGate.data[k * 3 + c] = dg
            }
        }
        if dPartsDirect.count > 0 { for o in 0..<(p * 3 * d) { dParts.data[o] += dPartsDirect.data[o] } }
        if learnedGate {
            // Softmax over the enabled parts: dz_c = g_c (dg_c − Σ_j g_j dg_j).
            var dz = Tensor<T>(zeros: [p, 3])
            for k in 0..<p {
                var dot: T = 0
                for c in 0..<3 { dot += side.gate.data[k * 3 + c] * dGate.data[k * 3 + c] }
                for c in 0..<3 where enabled[c] { dz.data[k * 3 + c] = side.gate.data[k * 3 + c] * (dGate.data[k * 3 + c] - dot) }
            }
            if gateHistory {
                // The history feature is data: only the part columns of dGateInput flow back.
                let d3 = 3 * d
                var dGateInput = Tensor<T>(zeros: [p, d3 + 1])
                denseBackward(&dGateInput, &dGateWeight, &dGateBias, dz, side.gateInput, gateWeight)
                for k in 0..<p { for j in 0..<d3 { dParts.data[k * d3 + j] += dGateInput.data[k * (d3 + 1) + j] } }
            } else {
                denseBackward(&dParts, &dGateWeight, &dGateBias, dz, side.gateInput, gateWeight)
            }
        }
        let userTable = FeatureGroup.user.rawValue, itemTable = FeatureGroup.item.rawValue, catTable = FeatureGroup.category.rawValue
        if enabled[HybridPart.mf.rawValue] {
            for k in 0..<p where side.userIndex[k] >= 0 {
                let u = side.userIndex[k]
                for j in 0..<d { dRows[userTable]!.data[u * 2 * d + j] += userRowScale * dParts.data[k * 3 * d + j] }
            }
            if mfLastItem {
                for k in 0..<p where side.step[k] >= 0 {
                    let i = side.seqIndex[side.row[k] * l + side.step[k]]
                    for j in 0..<d { dRows[itemTable]!.data[i * itemRowWidth + 3 * d + j] += dParts.data[k * 3 * d + j] }
                }
            }
        }
        if enabled[HybridPart.seq.rawValue] {
            var dOut = Tensor<T>(zeros: [b, l, d])
            for k in 0..<p where side.step[k] >= 0 {
                let (r, t) = (side.row[k], side.step[k])
                for j in 0..<d { dOut.data[(r * l + t) * d + j] += dParts.data[k * 3 * d + d + j] }
            }
            var dx = Tensor<T>(zeros: [b, l, d]), none = Tensor<T>.empty
            if gru != nil { gru!.backward(&dx, &none, dOut, .empty) }
            else { var noCell = Tensor<T>.empty; lstm!.backward(&dx, &none, &noCell, dOut, .empty, .empty) }
            for r in 0..<b {
                for t in 0..<l where side.seqIndex[r * l + t] >= 0 {
                    let i = side.seqIndex[r * l + t]
                    for j in 0..<d { dRows[itemTable]!.data[i * itemRowWidth + d + j] += dx.data[(r * l + t) * d + j] }
                }
            }
        }
        if enabled[HybridPart.mlp.rawValue] {
            var dOut = Tensor<T>(zeros: [p, d])
            for k in 0..<p { for j in 0..<d { dOut.data[k * d + j] = dParts.data[k * 3 * d + 2 * d + j] } }
            var dIn = Tensor<T>(zeros: [p, 2 * d])
            userTower.backward(&dIn, dOut)
            for k in 0..<p {
                if side.userIndex[k] >= 0 {
                    let u = side.userIndex[k]
                    for j in 0..<d { dRows[userTable]!.data[u * 2 * d + d + j] += userRowScale * dIn.data[k * 2 * d + j] }
                }
                if side.categoryIndex[k] >= 0 {
                    let c = side.categoryIndex[k]
                    for j in 0..<d { dRows[catTable]!.data[c * d + j] += dIn.data[k * 2 * d + d + j] }
                }
            }
        }
    }

    // MARK: - Item side

    /// Item vectors V (K × 3D) of `keys` with their category and price-level keys.
    mutating func itemSide(keys: [UInt64], categories: [UInt64], levels: [UInt64]?, rows: [UInt8: TableRows<T>], training: Bool) -> ItemSideVectors {
        let d = dim, n = keys.count
        let items = rows[FeatureGroup.item.rawValue], cats = rows[FeatureGroup.category.rawValue], lv = rows[FeatureGroup.priceLevel.rawValue]
        var side = ItemSideVectors()
        side.itemIndex = keys.map { Self.index(items, $0, "item") }
        side.vectors = Tensor(zeros: [n, 3 * d])
        for k in 0..<n {
            let i = side.itemIndex[k]
            if enabled[HybridPart.mf.rawValue] { for j in 0..<d { side.vectors.data[k * 3 * d + j] = items!.values.data[i * itemRowWidth + j] } }
            if enabled[HybridPart.seq.rawValue] { for j in 0..<d { side.vectors.data[k * 3 * d + d + j] = items!.values.data[i * itemRowWidth + d + j] } }
        }
        if enabled[HybridPart.mlp.rawValue] {
            let width = (usesPriceLevel ? 3 : 2) * d
            side.categoryIndex = categories.map { Self.index(cats, $0, "category") }
            side.levelIndex = usesPriceLevel ? (levels ?? []).map { Self.index(lv, $0, "price level") } : []
            side.towerInput = Tensor(zeros: [n, width])
            for k in 0..<n {
                for j in 0..<d { side.towerInput.data[k * width + j] = items!.values.data[side.itemIndex[k] * itemRowWidth + 2 * d + j] }
                for j in 0..<d { side.towerInput.data[k * width + d + j] = cats!.values.data[side.categoryIndex[k] * d + j] }
                if usesPriceLevel { for j in 0..<d { side.towerInput.data[k * width + 2 * d + j] = lv!.values.data[side.levelIndex[k] * d + j] } }
            }
            var out = Tensor<T>.empty
            itemTower.forward(&out, side.towerInput, training: training)
            for k in 0..<n { for j in 0..<d { side.vectors.data[k * 3 * d + 2 * d + j] = out.data[k * d + j] } }
        }
        return side
    }

    /// Backward of `itemSide` (training forward) from `dVectors` (K × 3D).
    mutating func itemSideBackward(_ side: ItemSideVectors, _ dVectors: Tensor<T>, dRows: inout [UInt8: Tensor<T>]) {
        let d = dim, n = side.itemIndex.count
        let itemTable = FeatureGroup.item.rawValue
        for k in 0..<n {
            let i = side.itemIndex[k]
            for c in 0..<2 where enabled[c] {
                for j in 0..<d { dRows[itemTable]!.data[i * itemRowWidth + c * d + j] += dVectors.data[k * 3 * d + c * d + j] }
            }
        }
        guard enabled[HybridPart.mlp.rawValue] else { return }
        let width = (usesPriceLevel ? 3 : 2) * d
        var dOut = Tensor<T>(zeros: [n, d])
        for k in 0..<n { for j in 0..<d { dOut.data[k * d + j] = dVectors.data[k * 3 * d + 2 * d + j] } }
        var dIn = Tensor<T>(zeros: [n, width])
        itemTower.backward(&dIn, dOut)
        for k in 0..<n {
            for j in 0..<d { dRows[itemTable]!.data[side.itemIndex[k] * itemRowWidth + 2 * d + j] += dIn.data[k * width + j] }
            for j in 0..<d { dRows[FeatureGroup.category.rawValue]!.data[side.categoryIndex[k] * d + j] += dIn.data[k * width + d + j] }
            if usesPriceLevel {
                for j in 0..<d { dRows[FeatureGroup.priceLevel.rawValue]!.data[side.levelIndex[k] * d + j] += dIn.data[k * width + 2 * d + j] }
            }
        }
    }

    // MARK: - Training step

    /// Loss, row gradients (aligned with `rows`) and σ(score) of each record's last positive;
    /// dense gradients are left in the layers (`flatGradients`).
    mutating func trainStep(_ batch: ModelBatch, rows: [UInt8: TableRows<T>]) -> (loss: Double, dRows: [UInt8: Tensor<T>], last: [T]) {
        zeroGradients()
        var dRows: [UInt8: Tensor<T>] = [:]
        for (t, r) in rows { dRows[t] = Tensor(zeros: r.values.shape) }
        let seq = Self.field(batch, "seq"), pos = Self.field(batch, "pos"), neg = Self.field(batch, "neg")
        let w = seq.length, d3 = vectorWidth
        var positions: [(Int, Int)] = []
        var lastPosition = [Int](repeating: -1, count: batch.size)
        for r in 0..<batch.size {
            for t in 0..<w where seq.mask[r * w + t] != 0 { lastPosition[r] = positions.count; positions.append((r, t)) }
        }
        let p = positions.count
        guard p > 0 else { return (0, dRows, [T](repeating: 0, count: batch.size)) }
        let user = userSide(batch, rows: rows, positions: positions, training: true)

        // Candidates: every positive and shared negative, once.
        let posCat = Self.field(batch, "pos_cat"), negCat = Self.field(batch, "neg_cat")
        let posPrice = batch.fields["pos_price"], negPrice = batch.fields["neg_price"]
        var features: [UInt64: (UInt64, UInt64)] = [:]
        for (r, t) in positions {
            features[pos.keys[r * w + t]] = (posCat.keys[r * w + t], posPrice?.keys[r * w + t] ?? 0)
        }
        for j in 0..<neg.keys.count where neg.mask[j] != 0 { features[neg.keys[j]] = (negCat.keys[j], negPrice?.keys[j] ?? 0) }
        let candidates = features.keys.sorted()
        let candidateIndex = Dictionary(uniqueKeysWithValues: candidates.enumerated().map { ($1, $0) })
        let items = itemSide(keys: candidates, categories: candidates.map { features[$0]!.0 },
                             levels: usesPriceLevel ? candidates.map { features[$0]!.1 } : nil, rows: rows, training: true)
        let negatives = (0..<neg.keys.count).filter { neg.mask[$0] != 0 }.map { candidateIndex[neg.keys[$0]]! }
        let n = negatives.count, c = n + 1
        let positive = positions.map { r, t in candidateIndex[pos.keys[r * w + t]]! }

        // Logits (P × (1 + N)): column 0 the positive, then the shared negatives.
        var negVectors = Tensor<T>(zeros: [n, d3])
        for (k, i) in negatives.enumerated() { for j in 0..<d3 { negVectors.data[k * d3 + j] = items.vectors.data[i * d3 + j] } }
        var negLogits = Tensor<T>(zeros: [p, n])
        Self.gemm(&negLogits, user.vectors, negVectors, transB: true)
        var logits = Tensor<T>(zeros: [p, c]), candidateMask = Tensor<T>(zeros: [p, c])
        for k in 0..<p {
            var z: T = 0
            for j in 0..<d3 { z += user.vectors.data[k * d3 + j] * items.vectors.data[positive[k] * d3 + j] }
            logits.data[k * c] = z
            candidateMask.data[k * c] = 1
            for m in 0..<n {
                logits.data[k * c + 1 + m] = negLogits.data[k * n + m]
                candidateMask.data[k * c + 1 + m] = negatives[m] == positive[k] ? 0 : 1
            }
        }
        var dLogits = Tensor<T>(zeros: [p, c])
        var loss = softmaxCrossEntropy(&dLogits, logits, candidateMask: candidateMask)

        // dU = dL₀ V[pos] + dL_neg · V_neg;  dV_neg = dL_negᵀ · U;  dV[pos] += dL₀ U.
        var dNegLogits = Tensor<T>(zeros: [p, n])
        for k in 0..<p { for m in 0..<n { dNegLogits.data[k * n + m] = dLogits.data[k * c + 1 + m] } }
        var dUser = Tensor<T>(zeros: [p, d3])
        Self.gemm(&dUser, dNegLogits, negVectors, transB: false)
        var dNegVectors = Tensor<T>(zeros: [n, d3])
        Self.gemm(&dNegVectors, dNegLogits, user.vectors, transA: true, transB: false)
        var dItems = Tensor<T>(zeros: [candidates.count, d3])
        for k in 0..<p {
            let g = dLogits.data[k * c], i = positive[k]
            for j in 0..<d3 {
                dUser.data[k * d3 + j] += g * items.vectors.data[i * d3 + j]
                dItems.data[i * d3 + j] += g * user.vectors.data[k * d3 + j]
            }
        }
        for (m, i) in negatives.enumerated() { for j in 0..<d3 { dItems.data[i * d3 + j] += dNegVectors.data[m * d3 + j] } }
        var dPartsDirect = Tensor<T>.empty
        if partLossWeight > 0 {
            dPartsDirect = Tensor(zeros: [p, d3])
            loss += partLossWeight * partLosses(user.parts, items.vectors, negVectors, positive: positive, negatives: negatives,
                                                candidateMask: candidateMask, dParts: &dPartsDirect, dItems: &dItems)
        }
        itemSideBackward(items, dItems, dRows: &dRows)
        userSideBackward(user, dUser, dPartsDirect: dPartsDirect, batch: batch, rows: rows, dRows: &dRows)
        let last = (0..<batch.size).map { r -> T in
            guard lastPosition[r] >= 0 else { return 0 }
            return sigmoid(logits.data[lastPosition[r] * c])
        }
        return (Double(loss), dRows, last)
    }

    /// Σ_k L_k of the enabled parts, each part's own scores `a_k · b_k(i)` through the softmax
    /// over the positive and the shared negatives; adds λ ∂L_k into `dParts` (gradient of the
    /// unweighted part vectors) and `dItems` (gradient of the item vectors).
    ///
    /// - Parameters:
    ///   - parts: (P × 3D) unweighted user-side part vectors.
    ///   - itemVectors: (K × 3D) candidate item vectors; `negVectors` (N × 3D) those of the negatives.
    ///   - positive: (P) candidate index of each position's positive; `negatives` (N) of the negatives.
    ///   - candidateMask: (P × (1 + N)) as for the blend's softmax.
    private func partLosses(_ parts: Tensor<T>, _ itemVectors: Tensor<T>, _ negVectors: Tensor<T>, positive: [Int], negatives: [Int],
                            candidateMask: Tensor<T>, dParts: inout Tensor<T>, dItems: inout Tensor<T>) -> T {
        let d = dim, d3 = vectorWidth, p = positive.count, n = negatives.count, c = n + 1, lambda = partLossWeight
        var total: T = 0
        for part in 0..<3 where enabled[part] {
            let o = part * d
            var a = Tensor<T>(zeros: [p, d]), bNeg = Tensor<T>(zeros: [n, d])
            for k in 0..<p { for j in 0..<d { a.data[k * d + j] = parts.data[k * d3 + o + j] } }
            for m in 0..<n { for j in 0..<d { bNeg.data[m * d + j] = negVectors.data[m * d3 + o + j] } }
            var negLogits = Tensor<T>(zeros: [p, n])
            Self.gemm(&negLogits, a, bNeg, transB: true)
            var logits = Tensor<T>(zeros: [p, c])
            for k in 0..<p {
                var z: T = 0
                for j in 0..<d { z += a.data[k * d + j] * itemVectors.data[positive[k] * d3 + o + j] }
                logits.data[k * c] = z
                for m in 0..<n { logits.data[k * c + 1 + m] = negLogits.data[k * n + m] }
            }
            var dLogits = Tensor<T>(zeros: [p, c])
            total += softmaxCrossEntropy(&dLogits, logits, candidateMask: candidateMask)
            // dA = λ (dL₀ b[pos] + dL_neg · B_neg);  dB_neg = λ dL_negᵀ · A;  db[pos] += λ dL₀ a.
            var dNegLogits = Tensor<T>(zeros: [p, n])
            for k in 0..<p { for m in 0..<n { dNegLogits.data[k * n + m] = lambda * dLogits.data[k * c + 1 + m] } }
            var dA = Tensor<T>(zeros: [p, d]), dBNeg = Tensor<T>(zeros: [n, d])
            Self.gemm(&dA, dNegLogits, bNeg, transB: false)
            Self.gemm(&dBNeg, dNegLogits, a, transA: true, transB: false)
            for k in 0..<p {
                let g = lambda * dLogits.data[k * c], i = positive[k]
                for j in 0..<d {
                    dA.data[k * d + j] += g * itemVectors.data[i * d3 + o + j]
                    dItems.data[i * d3 + o + j] += g * a.data[k * d + j]
                }
            }
            for (m, i) in negatives.enumerated() { for j in 0..<d { dItems.data[i * d3 + o + j] += dBNeg.data[m * d + j] } }
            for k in 0..<p { for j in 0..<d { dParts.data[k * d3 + o + j] += dA.data[k * d + j] } }
        }
        return total
    }

    /// The training loss without gradients (for numeric checks): a copy runs `trainStep`.
    func loss(_ batch: ModelBatch, rows: [UInt8: TableRows<T>]) -> Double {
        var copy = self
        return copy.trainStep(batch, rows: rows).loss
    }

    // MARK: - Inference

    /// (B × 3D) user vectors after each record's whole `seq` (the state after its last item);
    /// with `partWeights` (3) the parts are blended by those weights instead of the gate
    /// (disabled parts stay 0).
    mutating func userVectors(_ batch: ModelBatch, rows: [UInt8: TableRows<T>], partWeights: [T]? = nil) -> [T] {
        let (vectors, parts) = userVectorsAndParts(batch, rows: rows)
        guard let partWeights else { return vectors }
        return blend(parts: parts, weights: partWeights)
    }

    /// One forward pass over each record's whole `seq`: (B × 3D) the gate-blended user vectors
    /// and (B × 3D) the parts' own blocks `[a_mf ; a_seq ; a_mlp]` before the gate.
    mutating func userVectorsAndParts(_ batch: ModelBatch, rows: [UInt8: TableRows<T>]) -> (vectors: [T], parts: [T]) {
        let seq = Self.field(batch, "seq"), w = seq.length
        let positions = (0..<batch.size).map { r in (r, (0..<w).filter { seq.mask[r * w + $0] != 0 }.last ?? -1) }
        let side = userSide(batch, rows: rows, positions: positions, training: false)
        return (side.vectors.data, side.parts.data)
    }

    /// (B × 3D) the parts' blocks (`userVectorsAndParts`) blended by fixed weights (3: mf,
    /// seq, mlp) instead of the gate; disabled parts stay 0.
    func blend(parts: [T], weights: [T]) -> [T] {
        precondition(weights.count == 3, "hybrid: 3 part weights (mf, seq, mlp)")
        let d = dim
        var out = parts
        for k in 0..<(parts.count / (3 * d)) { for c in 0..<3 { for j in 0..<d { out[k * 3 * d + c * d + j] *= enabled[c] ? weights[c] : 0 } } }
        return out
    }

    /// User vectors of lists made around an anchor item: per record and part k,
    /// `U'_k = U_k + β ‖U_k‖ b_k(a)/‖b_k(a)‖`, U_k = g_k a_k the part's block of the user vector
    /// and b_k(a) the anchor's item vector of that part. A candidate's score is then the
    /// user's next-item score plus β Σ_k ‖U_k‖ cos-weighted relatedness `b̂_k(a)·b_k(i)`: each
    /// part relates items through its own item vectors, as strongly as that part weighs in this
    /// user's score (the gate enters through ‖U_k‖; a disabled part has U_k = 0), scaled per part
    /// so that no part's item vectors dominate by their length alone. One part alone relates
    /// items by its own vectors; β = 0 or a zero anchor vector leaves U unchanged.
    ///
    /// - Parameters:
    ///   - users: (B × 3D) user vectors U.
    ///   - anchors: (B × 3D) item vectors V(a) of each record's anchor.
    ///   - weight: β ≥ 0.
    ///   - dim: D.
    static func anchoredVectors(users: [T], anchors: [T], weight: T, dim d: Int) -> [T] {
        let w = 3 * d, b = users.count / w
        precondition(users.count == b * w && anchors.count == b * w, "hybrid: anchored vectors need as many anchors as users (\(b) × \(w))")
        var out = users
        guard weight != 0 else { return out }
        for k in 0..<b {
            for c in 0..<3 {
                var uu: T = 0, aa: T = 0
                for j in 0..<d { uu += users[k * w + c * d + j] * users[k * w + c * d + j]; aa += anchors[k * w + c * d + j] * anchors[k * w + c * d + j] }
                guard aa > 0, uu > 0 else { continue }
                let scale = weight * (uu / aa).squareRoot()
                for j in 0..<d { out[k * w + c * d + j] += scale * anchors[k * w + c * d + j] }
            }
        }
        return out
    }

    /// (K × 3D) item vectors of `keys` (inference).
    mutating func itemVectors(keys: [UInt64], categories: [UInt64], levels: [UInt64]?, rows: [UInt8: TableRows<T>]) -> [T] {
        itemSide(keys: keys, categories: categories, levels: levels, rows: rows, training: false).vectors.data
    }

    // MARK: - Parameters

    /// Visits (name, value, gradient): the cell, user tower, item tower, gate.
    mutating func visitParameters(_ body: (_ name: String, _ value: inout Tensor<T>, _ grad: inout Tensor<T>) -> Void) {
        if gru != nil { gru!.visitParameters { n, v, g in body("gru." + n, &v, &g) } }
        if lstm != nil { lstm!.visitParameters { n, v, g in body("lstm." + n, &v, &g) } }
        userTower.visitParameters { n, v, g in body("userTower." + n, &v, &g) }
        itemTower.visitParameters { n, v, g in body("itemTower." + n, &v, &g) }
        body("gate.weight", &gateWeight, &dGateWeight)
        body("gate.bias", &gateBias, &dGateBias)
    }

    /// Zeroes every dense gradient.
    mutating func zeroGradients() {
        gru?.zeroGradients(); lstm?.zeroGradients()
        userTower.zeroGradients(); itemTower.zeroGradients()
        dGateWeight.zero(); dGateBias.zero()
    }

    // MARK: - Helpers

    /// Row index of `key` in `table`; a key that was not pulled is a programmer error
    /// (`HybridBatcher` puts every key the network reads into the batch's fields).
    static func index(_ table: TableRows<T>?, _ key: UInt64, _ what: String) -> Int {
        guard let i = table?.index(of: key) else { preconditionFailure("hybrid: \(what) key \(FeatureKey(rawValue: key)) was not pulled") }
        return i
    }

    /// The batch's field `name`; its absence is a programmer error.
    static func field(_ batch: ModelBatch, _ name: String) -> SparseField {
        guard let f = batch.fields[name] else { preconditionFailure("hybrid: the batch has no field \(name) (build it with HybridBatcher)") }
        return f
    }

    /// `c = op(a) · op(b)` (overwrites c, sized by the caller).
    static func gemm(_ c: inout Tensor<T>, _ a: Tensor<T>, _ b: Tensor<T>, transA: Bool = false, transB: Bool) {
        let m = c.rows, n = c.lastDim
        let k = transA ? a.rows : a.lastDim
        guard m > 0, n > 0, k > 0 else { return }
        a.data.withUnsafeBufferPointer { pa in
            b.data.withUnsafeBufferPointer { pb in
                c.data.withUnsafeMutableBufferPointer { pc in
                    // Safe: the caller sized a, b and c for op(a) (m × k), op(b) (k × n), c (m × n).
                    T.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1,
                           a: pa.baseAddress!, lda: a.lastDim, b: pb.baseAddress!, ldb: b.lastDim,
                           beta: 0, c: pc.baseAddress!, ldc: n)
                }
            }
        }
    }
}

extension HybridNetwork: FlatParameterNetwork {
    static var networkName: String { "hybrid" }
}
