using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Chainwalk.Syntax;

/// <summary>
/// JSON Lines output (docs/json.md): one object per line, written with one reused buffer and writer, so a long
/// listing (a conntrack table, a kube-proxy rule set) allocates per line only the text handed to the output.
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

    /// <summary>Closes the object and writes it, with a newline, to the output.</summary>
    public void End()
    {
        _writer.WriteEndObject();
        _writer.Flush();
        _out.Write(Encoding.UTF8.GetString(_buffer.WrittenSpan));
        _out.Write('\n');
    }

    /// <summary>A string field, or null when the value is null.</summary>
    public static void StringOrNull(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null) w.WriteNull(name);
        else w.WriteString(name, value);
    }

    public void Dispose() => _writer.Dispose();
}
