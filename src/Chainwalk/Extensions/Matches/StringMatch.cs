using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m string</c> (struct xt_string_info, revision 1).</summary>
public sealed class StringData : ExtensionData
{
    public ushort FromOffset;
    public ushort ToOffset = ushort.MaxValue;

    /// <summary>Text-search algorithm: bm, kmp or fsm (at most 15 characters kept).</summary>
    public string Algo = string.Empty;

    /// <summary>The pattern bytes (at most 128).</summary>
    public byte[] Pattern = [];

    public bool Invert;
    public bool IgnoreCase;

    public override ExtensionData Clone()
    {
        var c = (StringData)MemberwiseClone();
        c.Pattern = (byte[])Pattern.Clone();
        return c;
    }
}

/// <summary><c>-m string</c> (libxt_string.c, xt_string.c).</summary>
public sealed class StringMatch : XtExtension<StringData>
{
    private const int OFrom = 0, OTo = 1, OAlgo = 2, OIcase = 3, OString = 4, OHexString = 5;
    private const int MaxPattern = 128;

    public override string Name => "string";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("from", OFrom),
        new("to", OTo),
        new("algo", OAlgo, OptionArg.Required, OptFlags.Mandatory),
        new("string", OString, OptionArg.Required, OptFlags.Invert) { Excludes = 1 << OHexString },
        new("hex-string", OHexString, OptionArg.Required, OptFlags.Invert) { Excludes = 1 << OString },
        new("icase", OIcase, OptionArg.None),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, StringData d)
    {
        string arg = argument ?? string.Empty;
        switch (option.Id)
        {
            case OFrom: d.FromOffset = (ushort)XtParse.UIntBad(arg, 0, ushort.MaxValue, Name, option.Name); break;
            case OTo: d.ToOffset = (ushort)XtParse.UIntBad(arg, 0, ushort.MaxValue, Name, option.Name); break;
            case OAlgo: d.Algo = CommentMatch.Truncate(arg, 15); break;
            case OIcase: d.IgnoreCase = true; break;
            case OString:
                {
                    byte[] b = Encoding.UTF8.GetBytes(arg);
                    if (b.Length > MaxPattern) throw ctx.Error($"STRING too long \"{arg}\"");
                    d.Pattern = b;
                    if (invert) d.Invert = true;
                    break;
                }
            case OHexString:
                d.Pattern = ParseHex(ctx, arg);
                if (invert) d.Invert = true;
                break;
        }
    }

    /// <summary>parse_hex_string: literal text, "|hex hex|" blocks, and "\" escapes outside blocks.</summary>
    private static byte[] ParseHex(ParseContext ctx, string text)
    {
        byte[] s = Encoding.UTF8.GetBytes(text);
        int slen = s.Length;
        if (slen == 0) throw ctx.Error("STRING must contain at least one char");
        var pat = new List<byte>();
        bool hex = false, literal = false;
        int i = 0;
        byte At(int k) => k < slen ? s[k] : (byte)0;
        while (i < slen)
        {
            if (pat.Count >= MaxPattern) throw ctx.Error($"STRING too long \"{text}\"");
            if (s[i] == '\\' && !hex)
            {
                literal = true;
            }
            else if (s[i] == '\\')
            {
                throw ctx.Error("Cannot include literals in hex data");
            }
            else if (s[i] == '|')
            {
                if (hex)
                {
                    hex = false;
                }
                else
                {
                    hex = true;
                    while (At(i + 1) == ' ') i++;
                }
                if (i + 1 >= slen) break;
                i++;
            }
            if (literal)
            {
                if (i + 1 >= slen) throw ctx.Error("Bad literal placement at end of string");
                pat.Add(s[i + 1]);
                i += 2;
                literal = false;
            }
            else if (hex)
            {
                if (i + 1 >= slen) throw ctx.Error("Odd number of hex digits");
                if (i + 2 >= slen) throw ctx.Error("Invalid hex block");
                if (!Uri.IsHexDigit((char)s[i])) throw ctx.Error($"Invalid hex char '{(char)s[i]}'");
                if (!Uri.IsHexDigit((char)s[i + 1])) throw ctx.Error($"Invalid hex char '{(char)s[i + 1]}'");
                pat.Add((byte)((HexValue(s[i]) << 4) | HexValue(s[i + 1])));
                i += At(i + 2) == ' ' ? 3 : 2;
            }
            else
            {
                pat.Add(s[i]);
                i++;
            }
        }
        return pat.ToArray();
    }

    private static int HexValue(byte c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;

    protected override void FinalCheck(ParseContext ctx, StringData d)
    {
        if ((d.Given & ((1 << OString) | (1 << OHexString))) == 0)
            throw ctx.Error("STRING match: You must specify `--string' or `--hex-string'");
    }

    /// <summary>string_mt_check and textsearch_prepare: offsets in order, a known algorithm, a non-empty pattern.</summary>
    protected override string? CheckEntry(RuleCheckContext ctx, StringData d)
    {
        if (d.FromOffset > d.ToOffset) return RulesetEditor.InvalidArgument;
        if (d.Algo is not ("bm" or "kmp" or "fsm")) return "No such file or directory";
        if (d.Pattern.Length == 0) return RulesetEditor.InvalidArgument;
        // The finite-state-machine algorithm takes token tables, not text; a plain pattern is refused.
        if (d.Algo == "fsm") return RulesetEditor.InvalidArgument;
        return null;
    }

    private static bool NeedsHex(byte[] p)
    {
        foreach (byte b in p)
        {
            if (b < 0x20 || b > 0x7e) return true;
        }
        return p.Length > 0 && p[^1] == '\\';
    }

    private static void AppendPattern(StringBuilder sb, byte[] p, bool hex)
    {
        if (hex)
        {
            sb.Append(" \"|");
            foreach (byte b in p) sb.Append(b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
            sb.Append("|\"");
            return;
        }
        sb.Append(" \"");
        foreach (byte b in p)
        {
            if (b is (byte)'"' or (byte)'\\') sb.Append('\\');
            sb.Append((char)b);
        }
        sb.Append('"');
    }

    protected override void Save(StringBuilder sb, StringData d, IpFamily family)
    {
        bool hex = NeedsHex(d.Pattern);
        if (d.Invert) sb.Append(" !");
        sb.Append(hex ? " --hex-string" : " --string");
        AppendPattern(sb, d.Pattern, hex);
        sb.Append(" --algo ").Append(d.Algo);
        if (d.FromOffset != 0) sb.Append(" --from ").Append(XtParse.Dec(d.FromOffset));
        if (d.ToOffset != ushort.MaxValue) sb.Append(" --to ").Append(XtParse.Dec(d.ToOffset));
        if (d.IgnoreCase) sb.Append(" --icase");
    }

    protected override void Print(StringBuilder sb, StringData d, IpFamily family, bool numeric)
    {
        sb.Append(" STRING match ").Append(d.Invert ? "!" : string.Empty);
        AppendPattern(sb, d.Pattern, NeedsHex(d.Pattern));
        sb.Append(" ALGO name ").Append(d.Algo);
        if (d.FromOffset != 0) sb.Append(" FROM ").Append(XtParse.Dec(d.FromOffset));
        if (d.ToOffset != ushort.MaxValue) sb.Append(" TO ").Append(XtParse.Dec(d.ToOffset));
        if (d.IgnoreCase) sb.Append(" ICASE");
    }

    /// <summary>
    /// Evaluates the match (xt_string.c, skb_find_text): the pattern must lie wholly inside bytes
    /// [--from, --to) of the packet, counted from the IP header. Boyer-Moore and KMP find the same first
    /// occurrence in a linear buffer, so both are a plain substring search here. --icase folds both sides with
    /// the kernel's toupper, which also folds Latin-1 letters (lib/ctype.c).
    /// </summary>
    protected override bool Match(PacketContext ctx, StringData d) => Find(ctx.Packet.Bytes, d) != d.Invert;

    private static bool Find(ReadOnlySpan<byte> skb, StringData d)
    {
        int from = d.FromOffset, to = d.ToOffset;
        ReadOnlySpan<byte> pattern = d.Pattern;
        int upper = Math.Min(to, skb.Length);
        if (from >= upper) return false;
        ReadOnlySpan<byte> text = skb[from..upper];
        if (pattern.Length > text.Length) return false;
        // The found offset plus the pattern length must fit in to - from; text is already cut at to.
        if (!d.IgnoreCase) return text.IndexOf(pattern) >= 0;
        for (int i = 0; i + pattern.Length <= text.Length; i++)
        {
            int j = 0;
            while (j < pattern.Length && KernelUpper(text[i + j]) == KernelUpper(pattern[j])) j++;
            if (j == pattern.Length) return true;
        }
        return false;
    }

    /// <summary>The kernel's toupper: ASCII a-z and the Latin-1 lower-case range 0xDF-0xFF except 0xF7.</summary>
    private static byte KernelUpper(byte c) => (c is >= (byte)'a' and <= (byte)'z') || (c >= 0xDF && c != 0xF7) ? (byte)(c - 0x20) : c;
}
