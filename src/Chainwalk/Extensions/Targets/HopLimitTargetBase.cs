using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>What TTL and HL do with the field (IPT_TTL_SET/INC/DEC, IP6T_HL_*).</summary>
public enum HopLimitMode : byte
{
    Set = 0,
    Increment = 1,
    Decrement = 2,
}

/// <summary>Options of <c>-j TTL</c> / <c>-j HL</c> (struct ipt_TTL_info, ip6t_HL_info).</summary>
public sealed class HopLimitData : ExtensionData
{
    public HopLimitMode Mode;
    public byte Value;
}

/// <summary>
/// TTL (IPv4) and HL (IPv6): set, increment or decrement the TTL / hop limit (libipt_TTL.c,
/// libip6t_HL.c, xt_HL.c). mangle table; exactly one of the three options.
/// </summary>
public abstract class HopLimitTargetBase : XtExtension<HopLimitData>
{
    private const int SetId = 0, IncId = 1, DecId = 2;
    private const ulong Any = 0b111;

    /// <summary>"ttl" or "hl": the option prefix.</summary>
    protected abstract string Prefix { get; }

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<string>? Tables { get; } = ["mangle"];

    public override IReadOnlyList<XtOption> Options => _options ??=
    [
        new($"{Prefix}-set", SetId),
        new($"{Prefix}-dec", DecId),
        new($"{Prefix}-inc", IncId),
    ];

    private IReadOnlyList<XtOption>? _options;

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, HopLimitData d)
    {
        ulong min = option.Id == SetId ? 0UL : 1UL;
        TargetParsing.IntOptionRange(argument!, min, byte.MaxValue, Name, option.Name, out ulong v);
        d.Value = (byte)v;
        d.Mode = option.Id switch
        {
            SetId => HopLimitMode.Set,
            IncId => HopLimitMode.Increment,
            _ => HopLimitMode.Decrement,
        };
    }

    protected override void FinalCheck(ParseContext ctx, HopLimitData d)
    {
        if ((d.Given & Any) == 0) throw XtablesException.Param($"{Name}: You must specify an action");
        TargetParsing.OptionsFcheck(Name, d.Given,
        [
            (SetId, $"{Prefix}-set", false, Any, 0),
            (DecId, $"{Prefix}-dec", false, Any, 0),
            (IncId, $"{Prefix}-inc", false, Any, 0),
        ]);
    }

    protected override void Save(StringBuilder sb, HopLimitData d, IpFamily family)
    {
        string op = d.Mode switch
        {
            HopLimitMode.Set => "set",
            HopLimitMode.Decrement => "dec",
            _ => "inc",
        };
        sb.Append(" --").Append(Prefix).Append('-').Append(op).Append(' ').Append(TargetParsing.Dec(d.Value));
    }

    protected override void Print(StringBuilder sb, HopLimitData d, IpFamily family, bool numeric)
    {
        string op = d.Mode switch
        {
            HopLimitMode.Set => "set to",
            HopLimitMode.Decrement => "decrement by",
            _ => "increment by",
        };
        sb.Append(' ').Append(Name).Append(' ').Append(op).Append(' ').Append(TargetParsing.Dec(d.Value));
    }

    protected override string? CheckEntry(RuleCheckContext ctx, HopLimitData d) =>
        d.Mode != HopLimitMode.Set && d.Value == 0 ? RulesetEditor.InvalidArgument : null;

    /// <summary>xt_HL.c ttl_tg / hl_tg6: set, or add / subtract clamped to 0..255; written (IPv4 checksum adjusted) only when it changes.</summary>
    protected override Verdict Execute(PacketContext ctx, HopLimitData data)
    {
        byte[] b = ctx.Packet.Bytes;
        bool v4 = ctx.Family == IpFamily.V4;
        int at = v4 ? 8 : 7;
        int old = b[at];
        int nv = data.Mode switch
        {
            HopLimitMode.Set => data.Value,
            HopLimitMode.Increment => Math.Min(255, old + data.Value),
            _ => Math.Max(0, old - data.Value),
        };
        if (nv != old)
        {
            if (v4)
            {
                ushort oldWord = (ushort)((old << 8) | b[9]);
                b[8] = (byte)nv;
                TargetEdits.ReplaceIpv4Check(b, oldWord, (ushort)((nv << 8) | b[9]));
            }
            else
            {
                b[7] = (byte)nv;
            }
            ctx.Changed($"{(v4 ? "TTL" : "HL")} {old}→{nv}");
        }
        return Verdict.Continue;
    }
}
