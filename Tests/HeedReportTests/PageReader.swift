import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// Reads a report page with an XML parser (the page is well-formed XML by design) and
/// collects what the tests look at: per section, its plot's series, texts and markers.
final class PageReader: NSObject, XMLParserDelegate {
    /// One `<section>` of the page.
    struct Section {
        var id: String
        var svgCount = 0
        var ariaLabel = ""
        /// `data-series` of every series group, in order.
        var series: [String] = []
        /// Every text node inside the SVG (tick labels, axis labels, legend).
        var texts: [String] = []
        /// `class` of every marker line (`marker checkpoint`, ...).
        var markers: [String] = []
        /// Points drawn as dots, and `d` of every path.
        var circles = 0
        var paths: [String] = []
        /// Text of `<p class="empty">`, if the plot is missing.
        var empty: String?
    }

    private(set) var sections: [Section] = []
    private(set) var error: Error?
    private var stack: [String] = []
    private var text = ""
    private var inEmpty = false

    /// Parses `html`; `error` is set if it is not well-formed.
    init(html: String) {
        super.init()
        let parser = XMLParser(data: Data(html.utf8))
        parser.delegate = self
        if !parser.parse() { error = parser.parserError ?? NSError(domain: "PageReader", code: 1) }
    }

    /// The section with `id`.
    subscript(id: String) -> Section? { sections.first { $0.id == id } }

    /// Every `<svg>` of the page.
    var svgCount: Int { sections.reduce(0) { $0 + $1.svgCount } }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        stack.append(name == "g" && attributes["class"] == "legend" ? "legend" : name)
        text = ""
        switch name {
        case "section": sections.append(Section(id: attributes["id"] ?? ""))
        case "svg":
            sections[sections.count - 1].svgCount += 1
            sections[sections.count - 1].ariaLabel = attributes["aria-label"] ?? ""
        case "g": if let s = attributes["data-series"] { sections[sections.count - 1].series.append(s) }
        case "line": if let c = attributes["class"], c.hasPrefix("marker") { sections[sections.count - 1].markers.append(c) }
        case "circle": if stack.contains("g"), !stack.contains("legend") { sections[sections.count - 1].circles += 1 }
        case "path": sections[sections.count - 1].paths.append(attributes["d"] ?? "")
        case "p": inEmpty = attributes["class"] == "empty"
        default: break
        }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        stack.removeLast()
        if name == "text", stack.contains("svg") { sections[sections.count - 1].texts.append(text) }
        if name == "p", inEmpty, !sections.isEmpty { sections[sections.count - 1].empty = text; inEmpty = false }
        text = ""
    }
}
