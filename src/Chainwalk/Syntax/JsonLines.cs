using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Chainwalk.Syntax;

/// <summary>
/// JSON Lines output (docs/json.md): one object per line, written with one reused buffer and writer, so a long
/// listing (a conntrack table, a kube-proxy rule set) costs the writer itself no allocation per line once its buffers
/// have grown.
/// <code>
/// using var json = new JsonLines(io.Out);
/// Utf8JsonWriter w = json.Begin(); w.WriteString("key", "value"); json.End();
/// </code>
/// </summary>
public sealed class JsonLines : IDisposable
{
    /// <summary>As <c>trace --json</c>: non-ASCII text and quotes of rule text stay readable (no \u escapes for them).</summary>
    public static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly ArrayBufferWriter<byte> _buffer = new(512);
    private readonly Utf8JsonWriter _writer;
    private readonly TextWriter _out;
    private char[] _chars = new char[1024];

    public JsonLines(TextWriter output)
    {
        _out = output;
        _writer = new Utf8JsonWriter(_buffer, WriterOptions);
    }

    /// <summary>Starts a line's object and returns the writer for its fields.</summary>
    public Utf8JsonWriter Begin()
    {
        _buffer.ResetWrittenCount();
        _writer.Reset(_buffer);
        _writer.WriteStartObject();
        return _writer;
    }

    /// <summary>Closes the object and writes it, with a newline, to the output (through one reused char buffer).</summary>
    public void End()
    {
        _writer.WriteEndObject();
        _writer.Flush();
        ReadOnlySpan<byte> utf8 = _buffer.WrittenSpan;
        int needed = Encoding.UTF8.GetMaxCharCount(utf8.Length) + 1;
        if (_chars.Length < needed) _chars = new char[Math.Max(needed, _chars.Length * 2)];
        int n = Encoding.UTF8.GetChars(utf8, _chars);
        _chars[n] = '\n';
        _out.Write(_chars, 0, n + 1);
    }

    /// <summary>A string field, or null when the value is null.</summary>
    public static void StringOrNull(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null) w.WriteNull(name);
        else w.WriteString(name, value);
    }

    public void Dispose() => _writer.Dispose();
}
