using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m cpu</c> (struct xt_cpu_info).</summary>
public sealed class CpuData : ExtensionData
{
    public uint Cpu;
    public bool Invert;
}

/// <summary><c>-m cpu [!] --cpu N</c> (libxt_cpu.c, xt_cpu.c).</summary>
public sealed class CpuMatch : XtExtension<CpuData>
{
    public override string Name => "cpu";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("cpu", 0, OptionArg.Required, OptFlags.Invert | OptFlags.Mandatory),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, CpuData d)
    {
        d.Cpu = (uint)XtParse.UIntStrict(argument!, 0, uint.MaxValue, Name, option.Name);
        if (invert) d.Invert = true;
    }

    protected override void Save(StringBuilder sb, CpuData d, IpFamily family)
    {
        sb.Append(d.Invert ? " !" : string.Empty).Append(" --cpu ").Append(XtParse.Dec(d.Cpu));
    }

    protected override void Print(StringBuilder sb, CpuData d, IpFamily family, bool numeric)
    {
        sb.Append(" cpu ").Append(d.Invert ? "! " : string.Empty).Append(XtParse.Dec(d.Cpu));
    }

    /// <summary>xt_cpu.c: the processing CPU; the virtual host has CPU 0 only.</summary>
    protected override bool Match(PacketContext ctx, CpuData d) => (d.Cpu == (uint)ctx.Skb.Cpu) ^ d.Invert;
}
