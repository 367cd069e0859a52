using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Chainwalk.Compat;

/// <summary>
/// Standard input for the compat tools: <see cref="Console.In"/>, made only when a tool reads line by line, except
/// <see cref="ReadToEnd"/> (iptables-restore reading its whole input), which reads the bytes at once and decodes
/// them in one call with the console's input encoding, as Console.In would decode them: an 8 MB rule file then costs
/// one buffer and one string instead of a StreamReader's chunks and their copy.
/// </summary>
public sealed class StdinReader : TextReader
{
    private TextReader? _console;

    // Closed at exec (tool <&-), fd 0 is now some file of the runtime's: nothing is read from it (StandardInput).
    private TextReader Console => _console ??= StandardInput.WasClosed ? TextReader.Null : System.Console.In;

    public override int Peek() => Console.Peek();

    public override int Read() => Console.Read();

    public override int Read(char[] buffer, int index, int count) => Console.Read(buffer, index, count);

    public override int Read(Span<char> buffer) => Console.Read(buffer);

    public override string? ReadLine() => Console.ReadLine();

    public override string ReadToEnd()
    {
        // Console.In may hold text it has read ahead: then it must give the rest itself. A terminal stays Console.In's.
        if (_console is not null || !System.Console.IsInputRedirected || StandardInput.WasClosed) return Console.ReadToEnd();
        (byte[] buffer, int length) = ReadAllBytes();
        Encoding encoding = System.Console.InputEncoding;
        return encoding.GetString(buffer, 0, length);
    }

    /// <summary>
    /// The rest of standard input as bytes when <see cref="ReadToEnd"/> would decode them as UTF-8 (the console's input
    /// encoding is UTF-8, as it is under a UTF-8 or unset locale), so that the caller can decode them itself (see
    /// RestoreReader.ApplyUtf8); false (nothing read) otherwise.
    /// </summary>
    public bool TryReadToEndUtf8(out ReadOnlyMemory<byte> bytes)
    {
        bytes = default;
        if (_console is not null || !System.Console.IsInputRedirected || StandardInput.WasClosed) return false;
        Encoding encoding = System.Console.InputEncoding;
        if (!DecodesAsUtf8(encoding)) return false;
        (byte[] buffer, int length) = ReadAllBytes();
        bytes = buffer.AsMemory(0, length);
        return true;
    }

    /// <summary>
    /// Whether <paramref name="encoding"/> decodes as <see cref="Encoding.UTF8"/> does. Under a UTF-8 locale the console's
    /// encoding is a wrapper of UTF-8 (its preamble removed) whose own fallback properties are not the ones it decodes
    /// with, so the invalid sequences are tried instead: they must become the same U+FFFDs.
    /// </summary>
    private static bool DecodesAsUtf8(Encoding encoding)
    {
        if (encoding.CodePage != Encoding.UTF8.CodePage) return false;
        ReadOnlySpan<byte> probe = [0x61, 0xC3, 0x28, 0xE2, 0x82, 0x0A, 0xF0, 0x9D, 0x84, 0x9E, 0xED, 0xA0, 0x80, 0xFF, 0xE2, 0x82];
        return encoding.GetString(probe) == Encoding.UTF8.GetString(probe);
    }

    private static (byte[] Buffer, int Length) ReadAllBytes()
    {
        using Stream stdin = System.Console.OpenStandardInput();
        int size = InitialSize();
        // A large input (a rule file) in a one-command process: its buffer, its text and the rules built from it come
        // faster on huge pages (see ShortLivedProcess.LargeHeap).
        if (size >= 1 << 20) Chainwalk.Host.ShortLivedProcess.LargeHeap();
        byte[] buffer = new byte[size];
        int length = 0;
        while (true)
        {
            if (length == buffer.Length) Array.Resize(ref buffer, buffer.Length * 2);
            int n = stdin.Read(buffer, length, buffer.Length - length);
            if (n <= 0) break;
            length += n;
        }
        return (buffer, length);
    }

    /// <summary>The size of standard input when it is a regular file (plus one byte to see the end), else 64 KiB.</summary>
    private static int InitialSize()
    {
        try
        {
            using var handle = new SafeFileHandle(0, ownsHandle: false);
            long size = RandomAccess.GetLength(handle);
            if (size > 0 && size < int.MaxValue / 2) return (int)size + 1;
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        catch (NotSupportedException)
        {
        }
        return 1 << 16;
    }
}
