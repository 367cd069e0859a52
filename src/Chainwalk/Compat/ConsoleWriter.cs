using System.Text;

namespace Chainwalk.Compat;

/// <summary>
/// <see cref="Console.Out"/> or <see cref="Console.Error"/>, made on the first write: a command that prints nothing
/// (iptables-restore, iptables -A) does not set up the console's writer and its encoding.
/// </summary>
internal sealed class ConsoleWriter(bool error) : TextWriter
{
    private TextWriter? _writer;

    private TextWriter Writer => _writer ??= error ? System.Console.Error : System.Console.Out;

    public override Encoding Encoding => Writer.Encoding;

    public override IFormatProvider FormatProvider => Writer.FormatProvider;

    [System.Diagnostics.CodeAnalysis.AllowNull]
    public override string NewLine
    {
        get => Writer.NewLine;
        set => Writer.NewLine = value;
    }

    public override void Write(char value) => Writer.Write(value);

    public override void Write(char[] buffer, int index, int count) => Writer.Write(buffer, index, count);

    public override void Write(ReadOnlySpan<char> buffer)
    {
        if (buffer.Length > 0) Writer.Write(buffer);
    }

    public override void Write(string? value)
    {
        if (!string.IsNullOrEmpty(value)) Writer.Write(value);
    }

    public override void WriteLine() => Writer.WriteLine();

    public override void WriteLine(string? value) => Writer.WriteLine(value);

    public override void WriteLine(ReadOnlySpan<char> buffer) => Writer.WriteLine(buffer);

    public override void Flush() => _writer?.Flush();
}
