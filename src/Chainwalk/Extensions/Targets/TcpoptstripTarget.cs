using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Targets;

/// <summary>Options of <c>-j TCPOPTSTRIP</c> (struct xt_tcpoptstrip_target_info): which TCP option kinds to strip.</summary>
public sealed class TcpoptstripData : ExtensionData
{
    /// <summary>Bit i of the 256-bit map: strip option kind i.</summary>
    public UInt128 Low;
    public UInt128 High;

    public bool Test(int kind) => kind < 128 ? ((Low >> kind) & UInt128.One) != 0 : ((High >> (kind - 128)) & UInt128.One) != 0;

    public void Set(int kind)
    {
        if (kind < 128) Low |= UInt128.One << kind;
        else High |= UInt128.One << (kind - 128);
    }

    public bool IsEmpty => Low == UInt128.Zero && High == UInt128.Zero;
}

/// <summary>
/// <c>-j TCPOPTSTRIP [--strip-options kind|name[,…]]</c> (libxt_TCPOPTSTRIP.c, xt_TCPOPTSTRIP.c).
/// mangle table, <c>-p tcp</c>.
/// </summary>
public sealed class TcpoptstripTarget : XtExtension<TcpoptstripData>
{
    internal static readonly (string Name, int Kind)[] OptionNames =
    [
        ("wscale", 3), ("mss", 2), ("sack-permitted", 4), ("sack", 5), ("timestamp", 8), ("md5", 19),
    ];

    public override string Name => "TCPOPTSTRIP";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<string>? Tables { get; } = ["mangle"];

    public override ushort RequiredProtocol => Protocols.Tcp;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("strip-options", 0),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, TcpoptstripData d)
    {
        foreach (string piece in argument!.Split(','))
        {
            ulong kind = 0;
            foreach (var (name, k) in OptionNames)
            {
                if (name == piece)
                {
                    kind = (ulong)k;
                    break;
                }
            }
            if (kind == 0 && !TargetParsing.StrToUiWhole(piece, 0, byte.MaxValue, out kind))
                throw XtablesException.Param($"Bad TCP option value \"{piece}\"");
            if (kind < 2) throw XtablesException.Param("Option value may not be 0 or 1");
            if (d.Test((int)kind)) throw XtablesException.Param($"Option \"{piece}\" already specified");
            d.Set((int)kind);
        }
    }

    private static void AppendList(StringBuilder sb, TcpoptstripData d, bool numeric)
    {
        bool first = true;
        for (int i = 0; i < 256; i++)
        {
            if (!d.Test(i)) continue;
            if (!first) sb.Append(',');
            first = false;
            string? name = null;
            if (!numeric)
            {
                foreach (var (n, k) in OptionNames)
                {
                    if (k == i) name = n;
                }
            }
            sb.Append(name ?? TargetParsing.Dec((ulong)i));
        }
    }

    protected override void Save(StringBuilder sb, TcpoptstripData d, IpFamily family)
    {
        if (d.IsEmpty) return;
        sb.Append(" --strip-options ");
        AppendList(sb, d, true);
    }

    protected override void Print(StringBuilder sb, TcpoptstripData d, IpFamily family, bool numeric)
    {
        if (d.IsEmpty) return;
        sb.Append(" TCPOPTSTRIP options ");
        AppendList(sb, d, numeric);
    }

    /// <summary>
    /// xt_TCPOPTSTRIP.c: every option whose kind is in the map is overwritten with NOPs, the checksum adjusted word
    /// by word. A later fragment is left alone; a packet whose TCP header is cut short is dropped.
    /// </summary>
    protected override Verdict Execute(PacketContext ctx, TcpoptstripData data)
    {
        Packet p = ctx.Packet;
        int tcphoff = TargetEdits.TransportOffset(p, out byte proto);
        if (tcphoff < 0 || (p.Family == IpFamily.V4 && p.IsNonFirstFragment) || proto != IpProtocol.Tcp) return Verdict.Continue;
        byte[] b = p.Bytes;
        int skbLen = Math.Min(p.TotalLength, b.Length);
        if (skbLen - tcphoff < 20) return Verdict.Drop;
        int hdr = (b[tcphoff + 12] >> 4) * 4;
        if (hdr < 20 || skbLen < tcphoff + hdr) return Verdict.Drop;
        bool changed = false;
        for (int i = 20; i < hdr - 1;)
        {
            int optl = TcpmssTarget.OptLength(b, tcphoff + i);
            if (i + optl > hdr) break;
            if (data.Test(b[tcphoff + i]))
            {
                for (int j = 0; j < optl; j++)
                {
                    int at = i + j;
                    int word = at & ~1;
                    ushort oldWord = (ushort)((b[tcphoff + word] << 8) | b[tcphoff + word + 1]);
                    b[tcphoff + at] = 1;
                    ushort newWord = (ushort)((b[tcphoff + word] << 8) | b[tcphoff + word + 1]);
                    b[tcphoff + at] = (byte)(oldWord >> ((at & 1) == 0 ? 8 : 0));
                    TargetEdits.ReplaceTcpWord(b, tcphoff, word, newWord);
                }
                changed = true;
            }
            i += optl;
        }
        if (changed) ctx.Changed("TCP options stripped");
        return Verdict.Continue;
    }
}
