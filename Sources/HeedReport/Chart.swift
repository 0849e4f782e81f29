import Foundation

/// One line chart as standalone SVG: labelled axes with round ticks, a legend, and optional
/// vertical event markers. Written by hand (no scripts, no libraries) so the report is one
/// self-contained file; every length is computed from the text it must hold, so labels are
/// never cut off.
struct Chart {
    /// A named line (or dots) of (x, y) points; `breaks` start a new segment before a point.
    struct Series {
        /// Legend text, and the group's `data-series` attribute.
        var name: String
        /// Stroke colour (CSS).
        var color: String
        /// In data units, in drawing order.
        var points: [(x: Double, y: Double)]
        /// Indices of points that start a new segment (a restart, a gap in the log).
        var breaks: Set<Int> = []
        /// Dots at every point (few points: epochs), else a plain line.
        var dots = false
        /// Whether the legend lists it (many workers share one entry).
        var inLegend = true
        /// Stroke width in pixels.
        var width = 1.5
        /// SVG `stroke-dasharray`, nil for a solid line.
        var dash: String? = nil
    }

    /// A vertical line at `x` (an event on the time axis), explained by `title` on hover.
    struct Marker {
        /// Position in x-axis units.
        var x: Double
        /// What happened.
        var kind: MarkerKind
        /// The hover text (SVG `<title>`).
        var title: String
    }

    /// How each kind of event is drawn.
    enum MarkerKind: String, CaseIterable {
        case checkpoint, failure, restart

        /// Red, orange and grey are kept out of the series palette for these.
        var color: String {
            switch self {
            case .checkpoint: return "#7f7f7f"
            case .failure: return "#d62728"
            case .restart: return "#ff7f0e"
            }
        }
        /// Checkpoints dashed, failures solid, restarts dash-dotted.
        var dash: String? {
            switch self {
            case .checkpoint: return "4 3"
            case .failure: return nil
            case .restart: return "8 3 2 3"
            }
        }
    }

    /// For `aria-label` and the test's eyes.
    var title: String
    /// The x axis label, with its unit.
    var xLabel: String
    /// The y axis label, with its unit.
    var yLabel: String
    /// The lines, drawn in order (later ones on top).
    var series: [Series]
    /// Event lines, drawn under the data.
    var markers: [Marker] = []
    /// Start the y axis at 0 (rates, sizes).
    var yFromZero = false
    /// Whole-number x ticks (epochs).
    var xIntegers = false
    /// A fixed x range (time plots share one so their markers line up).
    var xRange: (Double, Double)? = nil

    /// Width of the whole SVG, pixels.
    var width = 900.0
    /// Height of the plot area alone, pixels (the legend and the x axis come on top).
    var plotHeight = 260.0

    private static let tickFont = 11.0
    private static let labelFont = 12.0
    /// Approximate advance of a character of the sans-serif font at `size`, generous so
    /// estimated widths are upper bounds.
    private static func textWidth(_ s: String, size: Double) -> Double { Double(s.count) * size * 0.62 }

    /// The SVG element.
    func svg() -> String {
        let points = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        let xs = points.map(\.x) + markers.map(\.x)
        let x = AxisScale(low: xRange?.0 ?? xs.min() ?? 0, high: xRange?.1 ?? xs.max() ?? 1, ticks: 8, integers: xIntegers)
        let y = AxisScale(low: points.map(\.y).min() ?? 0, high: points.map(\.y).max() ?? 1, ticks: 6, fromZero: yFromZero)
        let yTickLabels = y.ticks.map(y.label)
        let xTickLabels = x.ticks.map(x.label)

        // Margins from the text they hold.
        let yLabelBand = Self.labelFont + 10
        let left = yLabelBand + (yTickLabels.map { Self.textWidth($0, size: Self.tickFont) }.max() ?? 10) + 10
        let right = max(16, Self.textWidth(xTickLabels.last ?? "", size: Self.tickFont) / 2 + 6)
        let plotWidth = width - left - right
        let legend = legendLayout(left: left, maxWidth: width - left - 8)
        let top = 10 + legend.height + 8
        let bottom = Self.tickFont + 8 + Self.labelFont + 14
        let height = top + plotHeight + bottom
        func px(_ v: Double) -> Double { left + x.fraction(v) * plotWidth }
        func py(_ v: Double) -> Double { top + (1 - y.fraction(v)) * plotHeight }

        var s = """
        <svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="\(escape(title))" width="\(f(width))" height="\(f(height))" \
        viewBox="0 0 \(f(width)) \(f(height))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">

        """
        s += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotWidth))\" height=\"\(f(plotHeight))\" fill=\"#fff\" stroke=\"#bbb\"/>\n"
        // Grid and ticks.
        for (v, label) in zip(y.ticks, yTickLabels) {
            let yy = py(v)
            s += "<line x1=\"\(f(left))\" y1=\"\(f(yy))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(yy))\" stroke=\"#eee\"/>"
            s += "<line x1=\"\(f(left - 4))\" y1=\"\(f(yy))\" x2=\"\(f(left))\" y2=\"\(f(yy))\" stroke=\"#555\"/>"
            s += "<text x=\"\(f(left - 7))\" y=\"\(f(yy + Self.tickFont * 0.35))\" font-size=\"\(f(Self.tickFont))\" text-anchor=\"end\" fill=\"#333\">\(escape(label))</text>\n"
        }
        for (v, label) in zip(x.ticks, xTickLabels) {
            let xx = px(v)
            s += "<line x1=\"\(f(xx))\" y1=\"\(f(top))\" x2=\"\(f(xx))\" y2=\"\(f(top + plotHeight))\" stroke=\"#eee\"/>"
            s += "<line x1=\"\(f(xx))\" y1=\"\(f(top + plotHeight))\" x2=\"\(f(xx))\" y2=\"\(f(top + plotHeight + 4))\" stroke=\"#555\"/>"
            s += "<text x=\"\(f(xx))\" y=\"\(f(top + plotHeight + 6 + Self.tickFont))\" font-size=\"\(f(Self.tickFont))\" text-anchor=\"middle\" fill=\"#333\">\(escape(label))</text>\n"
        }
        // Axis labels.
        s += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(height - 6))\" font-size=\"\(f(Self.labelFont))\" text-anchor=\"middle\" fill=\"#111\">\(escape(xLabel))</text>\n"
        let cy = top + plotHeight / 2
        s += "<text x=\"\(f(Self.labelFont + 2))\" y=\"\(f(cy))\" font-size=\"\(f(Self.labelFont))\" text-anchor=\"middle\" fill=\"#111\" transform=\"rotate(-90 \(f(Self.labelFont + 2)) \(f(cy)))\">\(escape(yLabel))</text>\n"
        // Markers under the data.
        for m in markers where m.x.isFinite && m.x >= x.lower && m.x <= x.upper {
            let xx = px(m.x)
            s += "<line class=\"marker \(m.kind.rawValue)\" x1=\"\(f(xx))\" y1=\"\(f(top))\" x2=\"\(f(xx))\" y2=\"\(f(top + plotHeight))\" stroke=\"\(m.kind.color)\" stroke-width=\"1.5\""
            if let d = m.kind.dash { s += " stroke-dasharray=\"\(d)\"" }
            s += "><title>\(escape(m.title))</title></line>\n"
        }
        // Data.
        for series in series {
            s += "<g class=\"series\" data-series=\"\(escape(series.name))\" fill=\"none\" stroke=\"\(series.color)\" stroke-width=\"\(f(series.width))\""
            if let d = series.dash { s += " stroke-dasharray=\"\(d)\"" }
            s += "><title>\(escape(series.name))</title>"
            var path = ""
            var pen = false
            for (j, p) in series.points.enumerated() {
                guard p.x.isFinite, p.y.isFinite else { pen = false; continue }
                path += (pen && !series.breaks.contains(j) ? "L" : "M") + "\(f(px(p.x))),\(f(py(p.y)))"
                pen = true
            }
            if series.points.count > 1 { s += "<path d=\"\(path)\" stroke-linejoin=\"round\"/>" }
            if series.dots || series.points.count == 1 {
                for p in series.points where p.x.isFinite && p.y.isFinite {
                    s += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"3.5\" fill=\"\(series.color)\" stroke=\"#fff\" stroke-width=\"1\"/>"
                }
            }
            s += "</g>\n"
        }
        s += legend.svg
        s += "</svg>"
        return s
    }

    /// Legend entries left to right, wrapping to new rows: every series, then each kind of
    /// marker present.
    private func legendLayout(left: Double, maxWidth: Double) -> (svg: String, height: Double) {
        var entries: [(name: String, color: String, dash: String?, dot: Bool)] = series.filter(\.inLegend).map { ($0.name, $0.color, $0.dash, $0.dots) }
        for kind in MarkerKind.allCases where markers.contains(where: { $0.kind == kind }) {
            entries.append((kind.rawValue, kind.color, kind.dash, false))
        }
        let rowHeight = 18.0
        var svg = "<g class=\"legend\" font-size=\"\(f(Self.tickFont + 1))\" fill=\"#222\">"
        var x = 0.0, row = 0
        for e in entries {
            let w = 24 + Self.textWidth(e.name, size: Self.tickFont + 1) + 18
            if x > 0 && x + w > maxWidth { x = 0; row += 1 }
            let bx = left + x, by = 10 + Double(row) * rowHeight + rowHeight / 2
            svg += "<line x1=\"\(f(bx))\" y1=\"\(f(by))\" x2=\"\(f(bx + 20))\" y2=\"\(f(by))\" stroke=\"\(e.color)\" stroke-width=\"2.5\""
            if let d = e.dash { svg += " stroke-dasharray=\"\(d)\"" }
            svg += "/>"
            if e.dot { svg += "<circle cx=\"\(f(bx + 10))\" cy=\"\(f(by))\" r=\"3.5\" fill=\"\(e.color)\"/>" }
            svg += "<text x=\"\(f(bx + 26))\" y=\"\(f(by + 4))\">\(escape(e.name))</text>"
            x += w
        }
        svg += "</g>\n"
        return (svg, entries.isEmpty ? 0 : Double(row + 1) * rowHeight)
    }

    /// A coordinate with at most one decimal.
    private func f(_ v: Double) -> String {
        let r = (v * 10).rounded() / 10
        return r == r.rounded() ? String(Int(r)) : String(r)
    }
}

/// Text for HTML/SVG content and attribute values.
func escape(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.count)
    for c in s {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        default: out.append(c)
        }
    }
    return out
}
