using BenchmarkDotNet.Running;

namespace Chainwalk.Bench;

public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Contains("--speed")) return SpeedHarness.Run(args);
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
