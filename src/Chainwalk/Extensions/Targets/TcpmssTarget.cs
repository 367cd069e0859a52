using System.Text;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>Options of <c>-j TCPMSS</c> (struct xt_tcpmss_info).</summary>
public sealed class TcpmssData : ExtensionData
{
    /// <summary>The value XT_TCPMSS_CLAMP_PMTU stands for "clamp to path MTU".</summary>
    public const ushort ClampPmtu = 0xFFFF;

    /// <summary>The MSS to set, or <see cref="ClampPmtu"/>.</summary>
    public ushort Mss;

    public bool Clamp => Mss == ClampPmtu;
}

/// <summary>
/// <c>-j TCPMSS --set-mss N | --clamp-mss-to-pmtu</c> (libxt_TCPMSS.c, xt_TCPMSS.c). Needs <c>-p tcp</c>;
/// clamping only in FORWARD, OUTPUT and POSTROUTING. Through nf_tables the kernel skips its
/// "--tcp-flags SYN" check (par->nft_compat), so iptables-nft accepts the rule without it. Both
/// options may be given; the last one wins.
/// </summary>
public sealed class TcpmssTarget : XtExtension<TcpmssData>
{
    private const int SetMss = 0, ClampMss = 1;

    public override string Name => "TCPMSS";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override ushort RequiredProtocol => Protocols.Tcp;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("set-mss", SetMss),
        new("clamp-mss-to-pmtu", ClampMss, OptionArg.None),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, TcpmssData d)
    {
        if (option.Id == ClampMss)
        {
            d.Mss = TcpmssData.ClampPmtu;
            return;
        }
        ulong max = ushort.MaxValue - (ctx.Family == IpFamily.V4 ? 20UL : 40UL);
        TargetParsing.IntOptionRange(argument!, 0, max, Name, option.Name, out ulong v);
        d.Mss = (ushort)v;
    }

    protected override void FinalCheck(ParseContext ctx, TcpmssData d)
    {
        if (d.Given == 0) throw XtablesException.Param("TCPMSS target: At least one parameter is required");
    }

    protected override void Save(StringBuilder sb, TcpmssData d, IpFamily family)
    {
        if (d.Clamp) sb.Append(" --clamp-mss-to-pmtu");
        else sb.Append(" --set-mss ").Append(TargetParsing.Dec(d.Mss));
    }

    protected override void Print(StringBuilder sb, TcpmssData d, IpFamily family, bool numeric)
    {
        if (d.Clamp) sb.Append(" TCPMSS clamp to PMTU");
        else sb.Append(" TCPMSS set ").Append(TargetParsing.Dec(d.Mss));
    }

    protected override string? CheckEntry(RuleCheckContext ctx, TcpmssData d)
    {
        const HookMask clampHooks = HookMask.Forward | HookMask.Output | HookMask.Postrouting;
        // The kernel tests par->hook_mask, which nf_tables fills in for base chains only.
        if (d.Clamp && (ctx.BaseChainHooks & ~clampHooks) != 0) return RulesetEditor.InvalidArgument;
        return null;
    }
}
