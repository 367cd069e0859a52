using System.Globalization;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>How a u32 location step combines with the next number (XT_U32_*).</summary>
public enum U32Op : byte
{
    And = 0,
    LeftShift = 1,
    RightShift = 2,
    At = 3,
}

/// <summary>One u32 test: a location expression and the ranges its value must fall in (struct xt_u32_test).</summary>
public sealed class U32Test
{
    /// <summary>Location steps; the first step's operator is unused.</summary>
    public List<(U32Op Op, uint Number)> Location { get; } = new();

    public List<(uint Min, uint Max)> Values { get; } = new();

    public U32Test Clone()
    {
        var t = new U32Test();
        t.Location.AddRange(Location);
        t.Values.AddRange(Values);
        return t;
    }
}

/// <summary>Options of <c>-m u32</c> (struct xt_u32).</summary>
public sealed class U32Data : ExtensionData
{
    public List<U32Test> Tests = new();
    public bool Invert;

    public override ExtensionData Clone()
    {
        var c = (U32Data)MemberwiseClone();
        c.Tests = Tests.Select(t => t.Clone()).ToList();
        return c;
    }
}

/// <summary><c>-m u32 [!] --u32 TESTS</c> (libxt_u32.c, xt_u32.c).</summary>
public sealed class U32Match : XtExtension<U32Data>
{
    private const int OU32 = 0;
    private const int MaxSize = 10;

    public override string Name => "u32";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("u32", OU32, OptionArg.Required, OptFlags.Mandatory | OptFlags.Invert),
    ];

    private static XtablesException Err(string msg) => XtablesException.Param(msg);

    private static uint Number(string s, ref int i, int pos)
    {
        int used = NumberParsing.ParseCPrefix(s.AsSpan(i), 0, out ulong v, out bool overflow);
        if (used == 0 || overflow || v > uint.MaxValue) throw Err($"u32: at char {pos}: not a number or out of range");
        i += used;
        return (uint)v;
    }

    private static char At(string s, int i) => i < s.Length ? s[i] : '\0';

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, U32Data d)
    {
        string s = argument ?? string.Empty;
        d.Invert = invert;
        d.Tests.Clear();
        var ct = new U32Test();
        int i = 0;
        bool values = false;
        while (true)
        {
            while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
            if (i >= s.Length)
            {
                if (!values) throw Err("u32: abrupt end of input after location specifier");
                if (ct.Values.Count == 0) throw Err("u32: test ended with no value specified");
                d.Tests.Add(ct);
                if (d.Tests.Count > MaxSize) throw Err($"u32: at char {i}: too many \"&&\"s");
                return;
            }
            if (!values)
            {
                if (s[i] == '=')
                {
                    if (ct.Location.Count == 0) throw Err($"u32: at char {i}: location spec missing");
                    i++;
                    values = true;
                    continue;
                }
                U32Op op = U32Op.And;
                if (ct.Location.Count != 0)
                {
                    switch (s[i])
                    {
                        case '&': op = U32Op.And; break;
                        case '<':
                            if (At(s, ++i) != '<') throw Err($"u32: at char {i}: a second '<' was expected");
                            op = U32Op.LeftShift;
                            break;
                        case '>':
                            if (At(s, ++i) != '>') throw Err($"u32: at char {i}: a second '>' was expected");
                            op = U32Op.RightShift;
                            break;
                        case '@': op = U32Op.At; break;
                        default: throw Err($"u32: at char {i}: operator expected");
                    }
                    i++;
                }
                uint n = Number(s, ref i, i);
                ct.Location.Add((op, n));
                if (ct.Location.Count > MaxSize) throw Err($"u32: at char {i}: too many operators");
            }
            else if (s[i] == '&')
            {
                if (At(s, ++i) != '&') throw Err($"u32: at char {i}: a second '&' was expected");
                if (ct.Values.Count == 0) throw Err($"u32: at char {i}: value spec missing");
                d.Tests.Add(ct);
                ct = new U32Test();
                if (d.Tests.Count > MaxSize) throw Err($"u32: at char {i}: too many \"&&\"s");
                i++;
                values = false;
            }
            else
            {
                if (ct.Values.Count > 0)
                {
                    if (s[i] != ',') throw Err($"u32: at char {i}: expected \",\" or \"&&\"");
                    i++;
                }
                uint min = Number(s, ref i, i);
                while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
                uint max = min;
                if (At(s, i) == ':')
                {
                    i++;
                    max = Number(s, ref i, i);
                }
                ct.Values.Add((min, max));
                if (ct.Values.Count > MaxSize) throw Err($"u32: at char {i}: too many \",\"s");
            }
        }
    }

    private static string H(uint v) => "0x" + v.ToString("x", CultureInfo.InvariantCulture);

    private static void Dump(StringBuilder sb, U32Data d)
    {
        sb.Append(" \"");
        for (int t = 0; t < d.Tests.Count; t++)
        {
            U32Test ct = d.Tests[t];
            if (t > 0) sb.Append("&&");
            sb.Append(H(ct.Location[0].Number));
            for (int i = 1; i < ct.Location.Count; i++)
            {
                sb.Append(ct.Location[i].Op switch { U32Op.And => "&", U32Op.LeftShift => "<<", U32Op.RightShift => ">>", _ => "@" });
                sb.Append(H(ct.Location[i].Number));
            }
            sb.Append('=');
            for (int i = 0; i < ct.Values.Count; i++)
            {
                if (i > 0) sb.Append(',');
                sb.Append(H(ct.Values[i].Min));
                if (ct.Values[i].Min != ct.Values[i].Max) sb.Append(':').Append(H(ct.Values[i].Max));
            }
        }
        sb.Append('"');
    }

    protected override void Save(StringBuilder sb, U32Data d, IpFamily family)
    {
        if (d.Invert) sb.Append(" !");
        sb.Append(" --u32");
        Dump(sb, d);
    }

    protected override void Print(StringBuilder sb, U32Data d, IpFamily family, bool numeric)
    {
        sb.Append(" u32");
        if (d.Invert) sb.Append(" !");
        Dump(sb, d);
    }

    /// <summary>
    /// u32_mt_checkentry (xt_u32.c): a shift by 32 or more is refused with EINVAL (recorded on Linux 6.18:
    /// "0&gt;&gt;32=0" fails with "RULE_APPEND failed (Invalid argument)", "0&gt;&gt;31=0" loads).
    /// </summary>
    protected override string? CheckEntry(RuleCheckContext ctx, U32Data d)
    {
        foreach (U32Test t in d.Tests)
        {
            for (int i = 1; i < t.Location.Count; i++)
            {
                if (t.Location[i].Op is U32Op.LeftShift or U32Op.RightShift && t.Location[i].Number >= 32)
                    return RulesetEditor.InvalidArgument;
            }
        }
        return null;
    }

    /// <summary>
    /// Evaluates the match (xt_u32.c) on the packet from its IP header: every test ("&amp;&amp;") must hold. A
    /// test reads 4 bytes at its first number, applies &amp;, &lt;&lt;, &gt;&gt; in turn, and "@" moves the base
    /// forward by the value so far and reads 4 bytes at base + number. A read past the end (or an overflowing
    /// base) makes the whole match false, before the inversion is applied.
    /// </summary>
    protected override bool Match(PacketContext ctx, U32Data d) => MatchTests(ctx.Packet.Bytes, d) != d.Invert;

    private static bool MatchTests(ReadOnlySpan<byte> skb, U32Data d)
    {
        uint len = (uint)skb.Length;
        foreach (U32Test t in d.Tests)
        {
            uint at = 0;
            uint pos = t.Location[0].Number;
            if (len < 4 || pos > len - 4) return false;
            uint val = HeaderReads.U32(skb, (int)pos);
            for (int i = 1; i < t.Location.Count; i++)
            {
                (U32Op op, uint number) = t.Location[i];
                switch (op)
                {
                    case U32Op.And:
                        val &= number;
                        break;
                    // Shift counts are below 32: CheckEntry refuses the others, as the kernel does.
                    case U32Op.LeftShift:
                        val <<= (int)number;
                        break;
                    case U32Op.RightShift:
                        val >>= (int)number;
                        break;
                    default:
                        if (at + val < at) return false;
                        at += val;
                        pos = number;
                        if (at + 4 < at || len < at + 4 || pos > len - at - 4) return false;
                        val = HeaderReads.U32(skb, (int)(at + pos));
                        break;
                }
            }
            bool any = false;
            foreach ((uint min, uint max) in t.Values)
            {
                if (min <= val && val <= max)
                {
                    any = true;
                    break;
                }
            }
            if (!any) return false;
        }
        return true;
    }
}
