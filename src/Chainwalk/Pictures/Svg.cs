using System.Globalization;
using System.Text;

namespace Chainwalk.Pictures;

/// <summary>A small SVG writer: boxes, lines with arrows, text; numbers in invariant culture; text escaped.</summary>
internal sealed class Svg
{
    private readonly StringBuilder _body = new();

    public Svg(double width, double height)
    {
        Width = width;
        Height = height;
    }

    public double Width { get; set; }

    public double Height { get; set; }

    private static string N(double v) => v.ToString("0.#", CultureInfo.InvariantCulture);

    public static string Escape(string s) => s.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal)
        .Replace(">", "&gt;", StringComparison.Ordinal).Replace("\"", "&quot;", StringComparison.Ordinal);

    public void Rect(double x, double y, double w, double h, string fill, string stroke, double strokeWidth = 1, double radius = 6, string? title = null)
    {
        _body.Append(CultureInfo.InvariantCulture, $"<rect x=\"{N(x)}\" y=\"{N(y)}\" width=\"{N(w)}\" height=\"{N(h)}\" rx=\"{N(radius)}\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{N(strokeWidth)}\">");
        if (title is not null) _body.Append("<title>").Append(Escape(title)).Append("</title>");
        _body.Append("</rect>\n");
    }

    public void Text(double x, double y, string text, double size = 12, string fill = "#222", string anchor = "start", string weight = "normal", string family = "sans-serif")
    {
        _body.Append(CultureInfo.InvariantCulture, $"<text x=\"{N(x)}\" y=\"{N(y)}\" font-family=\"{family}\" font-size=\"{N(size)}\" fill=\"{fill}\" text-anchor=\"{anchor}\" font-weight=\"{weight}\">{Escape(text)}</text>\n");
    }

    public void Line(double x1, double y1, double x2, double y2, string stroke, double width = 1.5, bool arrow = true, bool dashed = false)
    {
        _body.Append(CultureInfo.InvariantCulture, $"<line x1=\"{N(x1)}\" y1=\"{N(y1)}\" x2=\"{N(x2)}\" y2=\"{N(y2)}\" stroke=\"{stroke}\" stroke-width=\"{N(width)}\"");
        if (dashed) _body.Append(" stroke-dasharray=\"5,4\"");
        if (arrow) _body.Append(" marker-end=\"url(#arrow-").Append(stroke.TrimStart('#')).Append(")\"");
        _body.Append("/>\n");
        _colors.Add(stroke);
    }

    public void Path(string d, string stroke, double width = 1.5, bool arrow = true, string? title = null)
    {
        _body.Append(CultureInfo.InvariantCulture, $"<path d=\"{d}\" fill=\"none\" stroke=\"{stroke}\" stroke-width=\"{N(width)}\"");
        if (arrow) _body.Append(" marker-end=\"url(#arrow-").Append(stroke.TrimStart('#')).Append(")\"");
        _body.Append('>');
        if (title is not null) _body.Append("<title>").Append(Escape(title)).Append("</title>");
        _body.Append("</path>\n");
        _colors.Add(stroke);
    }

    private readonly HashSet<string> _colors = new(StringComparer.Ordinal);

    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{N(Width)}\" height=\"{N(Height)}\" viewBox=\"0 0 {N(Width)} {N(Height)}\">\n");
        sb.Append("<defs>\n");
        foreach (string c in _colors.OrderBy(c => c, StringComparer.Ordinal))
        {
            sb.Append(CultureInfo.InvariantCulture, $"<marker id=\"arrow-{c.TrimStart('#')}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"{c}\"/></marker>\n");
        }
        sb.Append("</defs>\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
        sb.Append(_body);
        sb.Append("</svg>\n");
        return sb.ToString();
    }
}
