using Chainwalk.Conntrack;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>Options of <c>-j CONNSECMARK</c> (struct xt_connsecmark_target_info).</summary>
public sealed class ConnsecmarkData : ExtensionData
{
    /// <summary>1 = save (CONNSECMARK_SAVE), 2 = restore (CONNSECMARK_RESTORE).</summary>
    public byte Mode;
}

/// <summary><c>-j CONNSECMARK --save|--restore</c> (libxt_CONNSECMARK.c, xt_CONNSECMARK.c): mangle or security table.</summary>
public sealed class ConnsecmarkTarget : XtExtension<ConnsecmarkData>
{
    public const byte ModeSave = 1, ModeRestore = 2;

    public override string Name => "CONNSECMARK";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<string>? Tables => ["mangle", "security"];

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("save", 0, OptionArg.None) { Excludes = 2 },
        new("restore", 1, OptionArg.None) { Excludes = 1 },
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, ConnsecmarkData d) =>
        d.Mode = option.Id == 0 ? ModeSave : ModeRestore;

    protected override void FinalCheck(ParseContext ctx, ConnsecmarkData d)
    {
        if (d.Given == 0) throw ctx.Error("CONNSECMARK target: parameter required");
    }

    /// <summary>connsecmark_tg: save copies the packet's secmark to a connection without one; restore the other way.</summary>
    protected override Verdict Execute(PacketContext ctx, ConnsecmarkData d)
    {
        if (!ConntrackHooks.TryGet(ctx.Skb, out ConnEntry ct, out _)) return Verdict.Continue;
        if (d.Mode == ModeSave)
        {
            if (ctx.Skb.Secmark != 0 && ct.Secmark == 0) ct.Secmark = ctx.Skb.Secmark;
        }
        else if (ctx.Skb.Secmark == 0)
        {
            ctx.Skb.Secmark = ct.Secmark;
        }
        return Verdict.Continue;
    }

    private static string ModeName(byte mode) => mode == ModeSave ? "save" : "restore";

    protected override void Save(StringBuilder sb, ConnsecmarkData d, IpFamily family) => sb.Append(" --").Append(ModeName(d.Mode));

    protected override void Print(StringBuilder sb, ConnsecmarkData d, IpFamily family, bool numeric) =>
        sb.Append(" CONNSECMARK ").Append(ModeName(d.Mode));
}
