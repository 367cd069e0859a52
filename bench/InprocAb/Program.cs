// Old against new in one process: each build of Chainwalk.Bench (with its own Chainwalk.dll beside it) is loaded into its
// own AssemblyLoadContext, and their Main is called in turn, TIMES times: A, B, A, B … (bench/inproc_ab.sh). On this shared
// VM two processes of the same build read up to 2x apart; within one process the sides alternate every second or so.
//   InprocAb DIR_A DIR_B [DIR_C …] TIMES -- harness arguments
using System.Reflection;
using System.Runtime.Loader;

namespace Chainwalk.InprocAb;

/// <summary>A load context that resolves every assembly from one build's output folder first.</summary>
internal sealed class BuildContext(string dir) : AssemblyLoadContext(isCollectible: false)
{
    protected override Assembly? Load(AssemblyName name)
    {
        string path = Path.Combine(dir, name.Name + ".dll");
        return File.Exists(path) ? LoadFromAssemblyPath(path) : null;
    }
}

internal static class Program
{
    private static int Main(string[] args)
    {
        int sep = Array.IndexOf(args, "--");
        if (sep < 3)
        {
            Console.Error.WriteLine("usage: InprocAb DIR_A DIR_B [DIR …] TIMES -- harness arguments");
            return 2;
        }
        string[] dirs = args[..(sep - 1)];
        int times = int.Parse(args[sep - 1], System.Globalization.CultureInfo.InvariantCulture);
        string[] rest = args[(sep + 1)..];
        MethodInfo[] mains = dirs.Select(d => new BuildContext(Path.GetFullPath(d)).LoadFromAssemblyPath(Path.Combine(Path.GetFullPath(d), "Chainwalk.Bench.dll")).EntryPoint!).ToArray();
        for (int t = 0; t < times; t++)
        {
            for (int k = 0; k < mains.Length; k++)
            {
                Console.Error.WriteLine($"== {(char)('A' + k)} {t}");
                mains[k].Invoke(null, [rest]);
            }
        }
        return 0;
    }
}
