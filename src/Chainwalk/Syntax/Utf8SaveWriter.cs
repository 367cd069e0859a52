using System.Text;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Syntax;

/// <summary>
/// The iptables-save text of <see cref="SaveWriter.WriteTable"/> written straight as UTF-8 bytes into a stream (the host
/// state file): the same text byte for byte, without building it in a StringBuilder and encoding it afterwards. The
/// fixed parts of a line (counters, <c>-A</c> and chain, addresses, interfaces, protocol, <c>-f</c>, match and target
/// names) are bytes written in place; an extension's own options still come from its <c>Save</c> into a reused
/// StringBuilder. Tests hold the two writers to the same output over the corpus.
/// </summary>
public sealed class Utf8SaveWriter
{
    /// <summary>The buffer is handed to the stream once it holds this much (at a line end).</summary>
    private const int DrainBytes = 1 << 16;

    private readonly Stream _stream;
    private readonly NameDb _names;
    private readonly StringBuilder _scratch = new(128);
    private byte[] _buffer = new byte[DrainBytes + 4096];
    private int _length;

    public Utf8SaveWriter(Stream stream, NameDb names)
    {
        _stream = stream;
        _names = names;
    }

    /// <summary>One table as <see cref="SaveWriter.WriteTable"/> writes it (rule counters when <paramref name="counters"/>).</summary>
    public void WriteTable(Table t, bool counters)
    {
        Byte((byte)'*');
        Text(t.Name);
        Byte((byte)'\n');
        foreach (Chain c in t.Chains)
        {
            Byte((byte)':');
            Text(c.Name);
            Byte((byte)' ');
            Text(c.IsBuiltin ? c.Policy ?? string.Empty : "-");
            Ascii(" [");
            Number(c.IsBuiltin ? c.Counters.Packets : 0);
            Byte((byte)':');
            Number(c.IsBuiltin ? c.Counters.Bytes : 0);
            Ascii("]\n");
        }
        foreach (Chain c in t.Chains)
        {
            foreach (Rule r in c.Rules)
            {
                if (counters)
                {
                    Byte((byte)'[');
                    Number(r.Counters.Packets);
                    Byte((byte)':');
                    Number(r.Counters.Bytes);
                    Ascii("] ");
                }
                Ascii("-A ");
                Text(c.Name);
                RuleBody(r);
                Byte((byte)'\n');
                if (_length >= DrainBytes) Drain();
            }
        }
        Ascii("COMMIT\n");
    }

    /// <summary>Writes what is buffered to the stream.</summary>
    public void Flush() => Drain();

    /// <summary><see cref="RuleWriter.AppendSaveBody"/> (without inline counters), as bytes.</summary>
    private void RuleBody(Rule rule)
    {
        Address('s', rule.Source, rule.SourceInverted);
        Address('d', rule.Destination, rule.DestinationInverted);
        Interface('i', rule.InInterface, rule.InInverted);
        Interface('o', rule.OutInterface, rule.OutInverted);
        if (rule.Protocol > 0)
        {
            if (rule.ProtocolInverted) Ascii(" !");
            Ascii(" -p ");
            if (Protocols.Name(rule.Protocol, _names) is { } pname) Text(pname);
            else Number(rule.Protocol);
        }
        if (rule.Fragment)
        {
            if (rule.FragmentInverted) Ascii(" !");
            Ascii(" -f");
        }
        foreach (MatchUse m in rule.Matches)
        {
            if (m.Extension.HiddenInListing(m.Data)) continue;
            Ascii(" -m ");
            Text(m.Extension.SaveName(m.Data));
            m.Extension.Save(_scratch.Clear(), m.Data, rule.Family);
            Text(_scratch);
        }
        if (rule.Target is { } t)
        {
            if (t.Extension is not null)
            {
                Ascii(" -j ");
                Text(t.Extension.SaveName(t.Data!));
                t.Extension.Save(_scratch.Clear(), t.Data!, rule.Family);
                Text(_scratch);
            }
            else if (t.Name.Length > 0)
            {
                Ascii(t.Goto ? " -g " : " -j ");
                Text(t.Name);
            }
        }
    }

    private void Address(char letter, IpNet net, bool inverted)
    {
        if (!inverted && net.IsZero) return;
        Option(letter, inverted);
        int cidr = net.PrefixLength;
        if (net.Family != IpFamily.V4 || cidr < 0)
        {
            Text(net.SaveText);
            return;
        }
        // IpNet.AppendSaveText's IPv4 form: the dotted quad of the low 32 bits, "/", the prefix length.
        uint v = net.AddressV4;
        Room(19 + 4);
        Span<byte> d = _buffer.AsSpan(_length);
        int p = Octet(d, 0, v >> 24);
        d[p++] = (byte)'.';
        p = Octet(d, p, (v >> 16) & 0xff);
        d[p++] = (byte)'.';
        p = Octet(d, p, (v >> 8) & 0xff);
        d[p++] = (byte)'.';
        p = Octet(d, p, v & 0xff);
        d[p++] = (byte)'/';
        p = Octet(d, p, (uint)cidr);
        _length += p;
    }

    /// <summary>
    /// The decimal digits of 0–255, each entry the ASCII digits in its low three bytes (first digit lowest) and their count
    /// in the top byte.
    /// </summary>
    private static readonly uint[] OctetDigits = MakeOctetDigits();

    private static uint[] MakeOctetDigits()
    {
        var t = new uint[256];
        for (uint v = 0; v < 256; v++)
        {
            string s = v.ToString(System.Globalization.CultureInfo.InvariantCulture);
            uint e = (uint)s.Length << 24;
            for (int i = 0; i < s.Length; i++) e |= (uint)s[i] << (8 * i);
            t[v] = e;
        }
        return t;
    }

    /// <summary>Writes 0–255 in decimal at <paramref name="p"/> (four bytes of room needed) and returns the position after it.</summary>
    private static int Octet(Span<byte> d, int p, uint v)
    {
        uint e = OctetDigits[(int)(v & 0xff)];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(d[p..], e & 0xffffff);
        return p + (int)(e >> 24);
    }

    private void Interface(char letter, string name, bool inverted)
    {
        if (name.Length == 0 || (name == "+" && !inverted)) return;
        Option(letter, inverted);
        Text(name);
    }

    private void Number(ulong v)
    {
        Room(20);
        if (v < 10)
        {
            _buffer[_length++] = (byte)('0' + v);
            return;
        }
        v.TryFormat(_buffer.AsSpan(_length), out int written, default, System.Globalization.CultureInfo.InvariantCulture);
        _length += written;
    }

    private void Byte(byte b)
    {
        Room(1);
        _buffer[_length++] = b;
    }

    /// <summary>Text known to be ASCII (this file's literals).</summary>
    /// <summary>A one-letter option as the save format writes it: " -s ", or " ! -s " when inverted.</summary>
    private void Option(char letter, bool inverted)
    {
        if (inverted) Ascii(" !");
        Room(4);
        _buffer[_length++] = (byte)' ';
        _buffer[_length++] = (byte)'-';
        _buffer[_length++] = (byte)letter;
        _buffer[_length++] = (byte)' ';
    }

    private void Ascii(string s)
    {
        Room(s.Length);
        for (int i = 0; i < s.Length; i++) _buffer[_length + i] = (byte)s[i];
        _length += s.Length;
    }

    /// <summary>Any text, UTF-8 encoded as the StringBuilder path's encoder encodes it (a lone surrogate becomes U+FFFD).</summary>
    private void Text(ReadOnlySpan<char> s)
    {
        Room(s.Length);
        if (System.Text.Ascii.FromUtf16(s, _buffer.AsSpan(_length), out int n) == System.Buffers.OperationStatus.Done)
        {
            _length += n;
            return;
        }
        Room(Encoding.UTF8.GetMaxByteCount(s.Length));
        _length += Encoding.UTF8.GetBytes(s, _buffer.AsSpan(_length));
    }

    private void Text(string s) => Text(s.AsSpan());

    /// <summary>A StringBuilder's text; one of several chunks is joined first, so that no surrogate pair is split.</summary>
    private void Text(StringBuilder sb)
    {
        ReadOnlyMemory<char> only = default;
        int chunks = 0;
        foreach (ReadOnlyMemory<char> chunk in sb.GetChunks())
        {
            only = chunk;
            if (++chunks > 1) break;
        }
        if (chunks <= 1) Text(only.Span);
        else Text(sb.ToString());
    }

    private void Room(int n)
    {
        if (_buffer.Length - _length >= n) return;
        Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + n));
    }

    private void Drain()
    {
        if (_length == 0) return;
        _stream.Write(_buffer, 0, _length);
        _length = 0;
    }
}
